import { spawn } from 'node:child_process';
import { existsSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, resolve, sep } from 'node:path';
import { CommanderError } from 'commander';
import { ActivationService } from '../activation/activationService.js';
import { HostManager } from '../hosts/hostManager.js';
import type { ControlServer } from '../control/controlServer.js';
import type { Kernel } from '../kernel.js';
import { findExtensionFolders } from '../registry/manifestLoader.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';

type StartServer = (values: Record<string, unknown>, onStop?: () => void) => Promise<{ kernel: Kernel; control?: ControlServer }>;

/** Paths whose changes are outputs or tooling, not sources. */
const IGNORED = /(^|[\\/])(node_modules|dist|\.git|coverage)([\\/]|$)|\.tsbuildinfo$/;

/** The TypeScript compiler the extension builds with: its own, else the one this CLI can find. */
function findTsc(dir: string): string | undefined {
  for (const from of [join(dir, 'package.json'), join(process.cwd(), 'package.json'), import.meta.url]) {
    try {
      return createRequire(from).resolve('typescript/bin/tsc');
    } catch {
      // try the next place
    }
  }
  return undefined;
}

/** Builds an extension folder: `tsc -p` when it has a tsconfig.json, else its `build` script, else nothing. */
export function buildExtension(dir: string): Promise<{ ok: boolean; output: string; ms: number }> {
  const started = performance.now();
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const tsc = existsSync(join(dir, 'tsconfig.json')) ? findTsc(dir) : undefined;
  const [command, args] = tsc ? [process.execPath, [tsc, '-p', dir]] : pkg.scripts?.build ? ['npm', ['run', '--silent', 'build']] : [undefined, []];
  if (!command) return Promise.resolve({ ok: true, output: '', ms: 0 });
  return new Promise((done) => {
    const child = spawn(command, args as string[], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', (err) => done({ ok: false, output: err.message, ms: Math.round(performance.now() - started) }));
    child.once('exit', (code) => done({ ok: code === 0, output, ms: Math.round(performance.now() - started) }));
  });
}

/**
 * `aion dev`: serves like `aion serve`, watches each `--extensions-dir`, and on a change rebuilds that
 * extension and reloads its host (deactivate, restart, activate) without restarting the kernel.
 */
export async function developExtensions(
  values: Record<string, unknown>,
  startServer: StartServer,
  print: (line: string) => void = (l) => process.stdout.write(l + '\n'),
): Promise<{ kernel: Kernel; close(): void }> {
  const roots = ((values['extensions-dir'] as string[] | undefined) ?? []).map((d) => resolve(d));
  if (roots.length === 0) throw new CommanderError(2, 'aion.dev', 'aion dev needs --extensions-dir <dir>: the extensions to watch');
  const watchers: FSWatcher[] = [];
  const close = () => watchers.splice(0).forEach((w) => w.close());
  const { kernel } = await startServer(values, close);
  const registry = kernel.get(ExtensionRegistry);
  const folders = roots.flatMap((root) => findExtensionFolders(root)).sort((a, b) => b.length - a.length);
  const idOf = (dir: string) => registry.all().find((r) => resolve(r.extensionPath) === dir)?.id;
  // A spare process per watched host, so a reload does not wait for a process to start.
  const warmStandby = (dir: string) => {
    const record = registry.all().find((r) => resolve(r.extensionPath) === dir);
    if (record && record.hostKind !== 'kernel' && record.state !== 'skipped' && record.state !== 'invalid') kernel.get(HostManager).prepareStandby(record);
  };
  folders.forEach(warmStandby);
  const timers = new Map<string, NodeJS.Timeout>();
  const manifestChanged = new Set<string>();
  let queue = Promise.resolve();
  const rebuild = (dir: string) => {
    queue = queue.then(async () => {
      const id = idOf(dir);
      if (!id) return print(`${relative(process.cwd(), dir) || dir} changed, but it is not a loaded extension (see aion extensions validate ${dir})`);
      if (manifestChanged.delete(dir))
        print(`${id}: package.json changed; code reloads now, manifest changes (routes, settings, contributions) need a restart`);
      const build = await buildExtension(dir);
      if (!build.ok) return print(`${id}: build failed in ${build.ms} ms, not reloaded\n${build.output.trimEnd()}`);
      try {
        const reloaded = await kernel.get(ActivationService).reload(id);
        print(`reloaded ${reloaded.extensions.join(', ')} (host ${reloaded.host}) in ${reloaded.ms} ms; build ${build.ms} ms`);
      } catch (err) {
        print(`${id}: reload failed: ${(err as Error).message}`);
      }
      warmStandby(dir);
    });
  };
  for (const root of roots) {
    if (!existsSync(root)) continue;
    watchers.push(
      watch(root, { recursive: true }, (_event, filename) => {
        if (!filename || IGNORED.test(filename.toString())) return;
        const path = join(root, filename.toString());
        const dir = folders.find((f) => path === f || path.startsWith(f + sep));
        if (!dir) return;
        if (path === join(dir, 'package.json')) manifestChanged.add(dir);
        clearTimeout(timers.get(dir));
        // Editors write in bursts: one rebuild per burst.
        timers.set(
          dir,
          setTimeout(() => rebuild(dir), 150),
        );
      }),
    );
  }
  print(`watching ${folders.length} extension folder${folders.length === 1 ? '' : 's'} under ${roots.join(', ')}`);
  return { kernel, close };
}
