import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createMessageConnection, type MessageConnection } from 'vscode-jsonrpc/node';
import { Emitter, type Event, type HostKind } from '@aion/extension-api';
import { RpcEndpoint } from '@aion/extension-api/protocol';
import { BatchingIpcReader, BatchingIpcWriter, createInMemoryConnectionPair, ExtensionHost, hostEntryPath } from '@aion/host-runtime';
import { defaultConfig } from '../config/configuration.js';
import { createLogger } from '../logging.js';
import type { ExtensionRecord } from '../registry/extensionRecord.js';
import { NetworkIsolation } from './networkIsolation.js';

export interface StartedHost {
  connection: MessageConnection;
  pid?: number;
  /** Fires once when the host is gone, whatever the reason. */
  onExit: Event<{ code: number | null; signal: string | null }>;
  kill(): void;
  /** Lines the host wrote to stdout/stderr. */
  onOutput?: Event<{ stream: 'stdout' | 'stderr'; line: string }>;
  /** A host in the kernel's own process: the edge calls its route handlers, and hooks their taps, without a message. */
  local?: Pick<ExtensionHost, 'handleRoute' | 'callTap'>;
}

export interface HostStartOptions {
  key: string;
  /** Every extension placed in this host. */
  extensions: ExtensionRecord[];
  /** Node permission-model flags that enforce their shared permission set. */
  permissionFlags: string[];
}

/** How the kernel reaches a kind of host. The `remote` kind plugs in by registering one of these. */
export interface HostTransport {
  readonly kind: HostKind;
  start(options: HostStartOptions): Promise<StartedHost>;
}

/** `kernel`: the host runs in the kernel's process over an in-memory message pair. */
export class InProcessTransport implements HostTransport {
  readonly kind = 'kernel' as const;

  async start(): Promise<StartedHost> {
    const [kernelSide, hostSide] = createInMemoryConnectionPair();
    const hostEndpoint = new RpcEndpoint(hostSide);
    const host = new ExtensionHost(hostEndpoint, 'kernel');
    hostSide.listen();
    const exit = new Emitter<{ code: number | null; signal: string | null }>();
    return {
      connection: kernelSide,
      local: host,
      onExit: exit.event,
      kill: () => {
        hostSide.dispose();
        exit.fire({ code: 0, signal: null });
      },
    };
  }
}

/** Only what a host needs; the kernel's environment (and its secrets) stays in the kernel. */
function hostEnvironment(kind: HostKind): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { AION_HOST_KIND: kind };
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'TZ', 'LANG', 'NODE_ENV', 'SYSTEMROOT']) if (process.env[name] !== undefined) env[name] = process.env[name];
  return env;
}

/** `shared` and `dedicated`: a child process over Node IPC; `dedicated` adds permission flags and network isolation. */
export class ChildProcessTransport implements HostTransport {
  /** Without the kernel's NetworkIsolation, allow-lists are still enforced, only without the operator's grants. */
  constructor(
    readonly kind: 'shared' | 'dedicated',
    private readonly network = new NetworkIsolation(defaultConfig(), createLogger()),
  ) {}

  async start({ extensions, permissionFlags }: HostStartOptions): Promise<StartedHost> {
    const execArgv = ['--enable-source-maps', ...permissionFlags];
    // Folders must exist before the permission model resolves them.
    for (const record of extensions) mkdirSync(record.storagePath, { recursive: true });
    if (this.kind === 'dedicated' && extensions[0]) {
      const memory = extensions[0].manifest.aion?.resources?.memoryMb;
      if (memory) execArgv.push(`--max-old-space-size=${memory}`);
    }
    const launch = await this.network.launch(this.kind === 'dedicated' ? extensions[0] : undefined, [...execArgv, hostEntryPath]);
    const child: ChildProcess = spawn(launch.command, launch.args, {
      env: { ...hostEnvironment(this.kind), ...launch.env },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'json',
    });
    const exit = new Emitter<{ code: number | null; signal: string | null }>();
    const output = new Emitter<{ stream: 'stdout' | 'stderr'; line: string }>();
    for (const stream of ['stdout', 'stderr'] as const) {
      let buffer = '';
      child[stream]?.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          output.fire({ stream, line: buffer.slice(0, nl) });
          buffer = buffer.slice(nl + 1);
        }
      });
    }
    let exited = false;
    child.once('exit', (code, signal) => {
      exited = true;
      launch.release();
      exit.fire({ code, signal });
    });
    await new Promise<void>((resolvePromise, reject) => {
      child.once('spawn', resolvePromise);
      child.once('error', (err) => {
        launch.release();
        reject(err);
      });
    });
    const connection = createMessageConnection(new BatchingIpcReader(child), new BatchingIpcWriter(child));
    return {
      connection,
      pid: child.pid,
      onExit: exit.event,
      onOutput: output.event,
      kill: () => {
        if (!exited) child.kill('SIGKILL');
      },
    };
  }
}
