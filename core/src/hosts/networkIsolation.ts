import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes } from '@aion/extension-api';
import { EGRESS_SOCKET_ENV } from '@aion/host-runtime';
import type { AionConfig } from '../config/configuration.js';
import type { Logger } from '../logging.js';
import type { ExtensionRecord } from '../registry/extensionRecord.js';
import { TYPES } from '../tokens.js';
import { networkPolicy, type NetworkPolicy } from './egressPolicy.js';
import { EgressProxy } from './egressProxy.js';

/**
 * How an extension's `aion.permissions.network` is enforced:
 * `os` — its host runs in its own network namespace, egress only through the kernel's proxy;
 * `unrestricted` — it declares no restriction (no `network` key, or `*:*`);
 * `advisory` — declared but not enforced (the operator chose advisory enforcement on a machine
 * without namespaces, or the extension does not run in a dedicated host);
 * `refused` — the machine cannot isolate it and enforcement is on, so it does not start.
 */
export type NetworkEnforcement = 'os' | 'advisory' | 'unrestricted' | 'refused';

/** Whether this machine can start a process in a network namespace of its own, and how. */
export interface IsolationCapability {
  available: boolean;
  /** The command line that runs the arguments appended to it in a new network namespace with loopback up. */
  prefix?: string[];
  /** Why not, when it cannot. */
  reason?: string;
}

function findExecutable(name: string): string | undefined {
  const folders = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const folder of folders) {
    if (!folder) continue;
    const candidate = join(folder, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this folder.
    }
  }
  return undefined;
}

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/** Tries what the host launch will do: a new network namespace (as root, else in a user namespace) with `lo` brought up. */
export function probeNetworkIsolation(): IsolationCapability {
  if (process.platform !== 'linux') return { available: false, reason: `network namespaces exist only on Linux, not ${process.platform}` };
  const unshare = findExecutable('unshare');
  const ip = findExecutable('ip');
  const sh = findExecutable('sh');
  if (!unshare) return { available: false, reason: 'unshare (util-linux) is not installed' };
  if (!ip) return { available: false, reason: 'ip (iproute2) is not installed' };
  if (!sh) return { available: false, reason: 'no sh was found' };
  const failures: string[] = [];
  for (const flags of [['--net'], ['--user', '--map-root-user', '--net']]) {
    const result = spawnSync(unshare, [...flags, '--', ip, 'link', 'set', 'lo', 'up'], {
      timeout: 5_000,
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    if (result.status === 0) {
      // exec keeps the pid (and the inherited IPC fd) through unshare and sh: a kill reaches node itself.
      return { available: true, prefix: [unshare, ...flags, '--', sh, '-c', `${shellQuote(ip)} link set lo up && exec "$@"`, 'aion-host'] };
    }
    failures.push(`unshare ${flags.join(' ')}: ${(result.stderr || result.error?.message || `exit ${result.status}`).trim()}`);
  }
  return { available: false, reason: failures.join('; ') };
}

let probe: () => IsolationCapability = probeNetworkIsolation;
let capability: IsolationCapability | undefined;

/** The machine's capability, probed once per process. */
export function networkIsolationCapability(): IsolationCapability {
  return (capability ??= probe());
}

/** For tests: replace the probe (no argument restores the real one); the next launch probes again. */
export function overrideNetworkIsolationProbe(replacement?: () => IsolationCapability): void {
  probe = replacement ?? probeNetworkIsolation;
  capability = undefined;
}

/** How to start one host process, and what to close once it has exited. */
export interface HostLaunch {
  command: string;
  args: string[];
  /** Added to the host's environment. */
  env: NodeJS.ProcessEnv;
  release(): void;
}

/**
 * Enforces `aion.permissions.network` (with the operator's `permissions.grants[id].network`) for
 * dedicated hosts: a restricted host starts in its own network namespace, where only loopback
 * exists, and reaches the world through an EgressProxy that checks each target.
 */
@injectable()
export class NetworkIsolation {
  private readonly proxies = new Set<EgressProxy>();
  private readonly closing = new Set<Promise<void>>();

  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(TYPES.Logger) private readonly logger: Logger,
  ) {}

  policy(record: ExtensionRecord): NetworkPolicy {
    return networkPolicy(record.manifest.aion?.permissions?.network, this.config.permissions.grants[record.id]?.network);
  }

  enforcement(record: ExtensionRecord): NetworkEnforcement {
    if (this.policy(record).unrestricted) return 'unrestricted';
    if (record.hostKind !== 'dedicated') return 'advisory';
    if (networkIsolationCapability().available) return 'os';
    return this.config.permissions.enforcement === 'advisory' ? 'advisory' : 'refused';
  }

  /** The command line for a host that runs `nodeArgs`; `record` is the extension of a dedicated host. */
  async launch(record: ExtensionRecord | undefined, nodeArgs: string[]): Promise<HostLaunch> {
    const direct: HostLaunch = { command: process.execPath, args: nodeArgs, env: {}, release: () => undefined };
    if (!record) return direct;
    const policy = this.policy(record);
    if (policy.unrestricted) return direct;
    for (const entry of policy.invalid)
      this.logger.warn({ extension: record.id, entry }, `network allow-list entry "${entry}" of ${record.id} is not host:port and is ignored`);
    const capability = networkIsolationCapability();
    if (!capability.available || !capability.prefix) {
      const why = `this machine cannot give its host a network namespace of its own (${capability.reason})`;
      if (this.config.permissions.enforcement !== 'advisory') {
        throw new AionError(
          ErrorCodes.NETWORK_ISOLATION_UNAVAILABLE,
          `${record.id} restricts its network, but ${why}. Run Aion as root or where unprivileged user namespaces are allowed, with unshare (util-linux) and ip (iproute2) installed; or set permissions.enforcement to "advisory" to start it without network isolation`,
          { details: { extension: record.id } },
        );
      }
      this.logger.error(
        { extension: record.id, code: ErrorCodes.NETWORK_ISOLATION_UNAVAILABLE, enforcement: 'advisory' },
        `NETWORK NOT ENFORCED: ${record.id} starts with unrestricted network access although its manifest restricts it, because ${why} and permissions.enforcement is "advisory"`,
      );
      return direct;
    }
    const proxy = await EgressProxy.start({ extensionId: record.id, policy, logger: this.logger });
    this.proxies.add(proxy);
    this.logger.info(
      { extension: record.id, allow: policy.entries },
      `${record.id} runs in a network namespace of its own; it reaches ${policy.entries.join(', ') || 'nothing'} through the egress proxy`,
    );
    return {
      command: capability.prefix[0]!,
      args: [...capability.prefix.slice(1), process.execPath, ...nodeArgs],
      env: { [EGRESS_SOCKET_ENV]: proxy.socketPath },
      release: () => {
        if (!this.proxies.delete(proxy)) return;
        const closed = proxy.close().finally(() => this.closing.delete(closed));
        this.closing.add(closed);
      },
    };
  }

  /** Closes every egress proxy still open (their hosts are gone or going), and waits for those closing. */
  async dispose(): Promise<void> {
    const open = [...this.proxies];
    this.proxies.clear();
    await Promise.all([...open.map((proxy) => proxy.close()), ...this.closing]);
  }
}
