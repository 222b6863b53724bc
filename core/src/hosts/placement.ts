import { createHash } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { existsSync, lstatSync, readdirSync, realpathSync } from 'node:fs';
import { hostEntryPath } from '@aion/host-runtime';
import type { ExtensionPermissions, HostKind } from '@aion/extension-api';
import type { AionConfig } from '../config/configuration.js';
import type { ExtensionRecord } from '../registry/extensionRecord.js';
import { networkPolicy } from './egressPolicy.js';

/**
 * How a host enforces its extensions' permissions: `trusted` — the kernel host, inside the kernel's
 * process, enforces nothing (built-ins and operator-granted extensions only); `os` — Node's permission
 * model (files, child processes) and, for restricted networks, a network namespace; `advisory` — the
 * machine could not enforce something and the operator allowed starting anyway.
 */
export type Enforcement = 'trusted' | 'os' | 'advisory';

/** Where an extension runs and why: decided once, before any of its code loads. */
export interface Placement {
  hostKind: HostKind;
  /** Extensions with the same key share one host process. */
  hostKey: string;
  enforcement: Enforcement;
  /** Why the kernel chose a different host than the manifest asked for, if it did. */
  reason?: string;
  /** Set when the extension must not start at all, with the reason. */
  refused?: string;
}

/** The manifest's permissions with the operator's grants merged in; the network list is the one the egress proxy enforces. */
export function effectivePermissions(record: ExtensionRecord, config: AionConfig): ExtensionPermissions {
  const declared = record.manifest.aion?.permissions ?? {};
  const extraNetwork = config.permissions.grants[record.id]?.network ?? [];
  if (extraNetwork.length === 0 || declared.network === undefined) return declared;
  const { entries } = networkPolicy(declared.network, extraNetwork);
  return { ...declared, network: entries.length > 0 ? entries : 'deny' };
}

/**
 * Decides the host. Extensions share a host only when nothing separates them: the same permission set,
 * the same trust (built-in, or one publisher — extensions in one process can act as each other), no
 * owned secrets and no grants of their own. Filesystem access is to an extension's own folders, so it
 * never matches another's: such extensions, and those with a restricted network, run alone.
 */
export function placeExtension(record: ExtensionRecord, config: AionConfig): Placement {
  // The operator's placement wins over the manifest's; a remote extension stays where its device is.
  const declared = record.manifest.aion?.host ?? 'shared';
  const asked = declared === 'remote' ? declared : (config.placement[record.id] ?? declared);
  if (asked === 'remote') return { hostKind: 'remote', hostKey: `remote:${record.id}`, enforcement: 'os' };
  if (asked === 'kernel') {
    if (record.builtin || config.permissions.grants[record.id]?.kernelHost) return { hostKind: 'kernel', hostKey: 'kernel', enforcement: 'trusted' };
    return {
      hostKind: 'kernel',
      hostKey: 'kernel',
      enforcement: 'trusted',
      refused: `${record.id} asks for the kernel host, where an extension runs with the kernel's full authority; only built-in extensions run there unless the operator sets permissions.grants["${record.id}"].kernelHost: true`,
    };
  }
  const permissions = effectivePermissions(record, config);
  const filesystem = permissions.filesystem ?? 'none';
  const grant = config.permissions.grants[record.id] ?? {};
  if (!record.builtin) {
    const needs = [
      permissions.childProcess && !grant.childProcess ? `childProcess (grant: permissions.grants["${record.id}"].childProcess: true)` : '',
      filesystem === 'all' && grant.filesystem !== 'all' ? `filesystem "all" (grant: permissions.grants["${record.id}"].filesystem: "all")` : '',
      permissions.addons && !grant.addons ? `addons (grant: permissions.grants["${record.id}"].addons: true)` : '',
    ].filter(Boolean);
    if (needs.length > 0) {
      return {
        hostKind: asked,
        hostKey: asked,
        enforcement: 'os',
        refused: `${record.id} declares ${needs.join(' and ')}, which reach the kernel's own data; it starts only when the operator grants that`,
      };
    }
  }
  const restricted = !networkPolicy(permissions.network).unrestricted;
  const alone =
    asked === 'dedicated' ? undefined : filesystem !== 'none' ? `it may ${filesystem} its own folders` : restricted ? 'its network is restricted' : undefined;
  if (asked === 'dedicated' || alone) {
    return {
      hostKind: 'dedicated',
      hostKey: `dedicated:${record.id}`,
      enforcement: 'os',
      reason: alone ? `runs in a dedicated host because ${alone}` : undefined,
    };
  }
  const hasGrants = Object.keys(config.permissions.grants[record.id] ?? {}).length > 0;
  const ownsSecrets = (record.manifest.contributes?.secrets ?? []).length > 0;
  const trust = record.builtin ? 'builtin' : `publisher:${record.manifest.publisher}`;
  const profile = JSON.stringify({
    trust,
    childProcess: permissions.childProcess === true,
    addons: permissions.addons === true ? true : undefined,
    own: hasGrants || (ownsSecrets && !record.builtin) ? record.id : undefined,
  });
  const defaultProfile = JSON.stringify({ trust: 'builtin', childProcess: false });
  const hostKey = profile === defaultProfile ? 'shared' : `shared:${createHash('sha256').update(profile).digest('hex').slice(0, 10)}`;
  return { hostKind: 'shared', hostKey, enforcement: 'os' };
}

const require = createRequire(import.meta.url);

/** Folders a host must read to load its own runtime: host-runtime, extension-api, their dependencies. */
function runtimeReadPaths(): string[] {
  const paths = new Set<string>();
  for (const pkg of ['@aion/host-runtime/package.json', '@aion/extension-api/package.json', 'vscode-jsonrpc/package.json']) {
    try {
      const dir = dirname(require.resolve(pkg));
      paths.add(dir);
      // Hoisted dependencies live in the node_modules folder that holds the package.
      const nm = dir.lastIndexOf('node_modules');
      if (nm >= 0) paths.add(dir.slice(0, nm + 'node_modules'.length));
    } catch {
      // Resolved through the host entry's own folder below.
    }
  }
  paths.add(resolve(dirname(hostEntryPath), '..', '..'));
  return [...paths];
}

/** Where packages linked into a node_modules folder (workspaces, `npm link`) really live: the permission model checks real paths. */
function linkedPackages(nodeModules: string): string[] {
  const out: string[] = [];
  const visit = (folder: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      return;
    }
    for (const name of names) {
      const path = resolve(folder, name);
      if (depth === 0 && name.startsWith('@')) visit(path, 1);
      else if (lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()) {
        try {
          out.push(realpathSync(path));
        } catch {
          // A dangling link reads nothing.
        }
      }
    }
  };
  visit(nodeModules, 0);
  return out;
}

/** Every node_modules folder module resolution may visit from `dir` upwards, and what they link to: code, never data. */
function moduleFolders(dir: string, scanned = new Map<string, string[]>()): string[] {
  const out: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    const nm = resolve(d, 'node_modules');
    // Extensions of one host share their ancestors' node_modules: each folder is listed once per host start.
    let found = scanned.get(nm);
    if (!found) scanned.set(nm, (found = existsSync(nm) ? [nm, realpathSync(nm), ...linkedPackages(nm)] : []));
    out.push(...found);
    if (dirname(d) === d) return out;
  }
}

/**
 * Node permission-model flags for a host running `records` (one permission set): read access to code
 * (the runtime, each extension's folder and module folders), its own storage folder per `filesystem`,
 * child processes only when granted. Workers inherit the same restrictions, so they are allowed.
 */
export function permissionFlags(records: ExtensionRecord[], config: AionConfig): string[] {
  const scanned = new Map<string, string[]>();
  const read = new Set([...runtimeReadPaths(), ...moduleFolders(dirname(hostEntryPath), scanned)]);
  const write = new Set<string>();
  let childProcess = false;
  let addons = false;
  for (const record of records) {
    const permissions = effectivePermissions(record, config);
    read.add(record.extensionPath);
    for (const folder of moduleFolders(record.extensionPath, scanned)) read.add(folder);
    const fs = permissions.filesystem ?? 'none';
    if (fs === 'read' || fs === 'write') read.add(record.storagePath);
    if (fs === 'write') write.add(record.storagePath);
    if (fs === 'all') read.add('*'), write.add('*');
    childProcess ||= permissions.childProcess === true;
    addons ||= permissions.addons === true;
  }
  // Node repeats a SecurityWarning for every allow flag in every host; the kernel says it once, with the reason, when the host starts.
  const flags = ['--experimental-permission', '--disable-warning=ExperimentalWarning', '--disable-warning=SecurityWarning', '--allow-worker'];
  for (const p of read) flags.push(`--allow-fs-read=${p}`);
  for (const p of write) flags.push(`--allow-fs-write=${p}`);
  if (childProcess) flags.push('--allow-child-process');
  if (addons) flags.push('--allow-addons');
  return flags;
}
