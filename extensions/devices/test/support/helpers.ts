import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { waitFor as waitForCondition } from '@aion/core';

/** The extension's folder (this file runs from dist/test/support). */
export const devicesRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const repoRoot = resolve(devicesRoot, '../..');
export const cliPath = join(repoRoot, 'core/dist/src/cli/main.js');
export const spokeSkills = join(devicesRoot, 'test/fixtures/spoke-skills');
export const spokeAuth = join(devicesRoot, 'test/fixtures/spoke-auth');

/** The loopback address a process listens on (the spoke's own kernel picks a free port). */
export function listeningUrl(pid: number): string | undefined {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.includes(`pid=${pid},`) && l.includes('127.0.0.1:'));
  const port = line && /127\.0\.0\.1:(\d+)/.exec(line)?.[1];
  return port ? `http://127.0.0.1:${port}` : undefined;
}

export function tempDir(prefix = 'aion-devices-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Runs `aion <args>` to completion. */
export function aion(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, AION_LOG_LEVEL: 'error', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

export interface SpokeProcess {
  child: ChildProcess;
  dataDir: string;
  output(): string;
  stop(keepData?: boolean): Promise<void>;
}

/** `aion spoke` in a child process with the demo skills, on its own data directory. */
export function startSpoke(
  hubUrl: string,
  token: string,
  options: { config?: Record<string, unknown>; env?: NodeJS.ProcessEnv; builtins?: string; extensionDirs?: string[]; dataDir?: string } = {},
): SpokeProcess {
  const dataDir = options.dataDir ?? tempDir('aion-spoke-');
  const dirs = options.extensionDirs ?? [spokeSkills];
  const args = [
    cliPath,
    'spoke',
    '--hub',
    hubUrl,
    '--token',
    token,
    '--data-dir',
    dataDir,
    '--builtins',
    options.builtins ?? 'aion.storage,aion.skills,aion.devices',
    ...dirs.flatMap((d) => ['--extensions-dir', d]),
    '--log-level',
    'info',
  ];
  const configFile = join(dataDir, 'config.json');
  if (options.config) {
    writeFileSync(configFile, JSON.stringify(options.config));
    args.push('--config', configFile);
  }
  const child = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (out += c));
  return {
    child,
    dataDir,
    output: () => out,
    stop: async (keepData = false) => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        await new Promise<void>((r) => {
          const t = setTimeout(() => (child.kill('SIGKILL'), r()), 5_000);
          child.once('exit', () => (clearTimeout(t), r()));
        });
      }
      if (!keepData) removeDir(dataDir);
    },
  };
}

/** The test kit's waitFor with this suite's defaults. */
export const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 50) =>
  waitForCondition<T>(what, probe, timeoutMs, everyMs);

/** A hand-made device client, for the hostile cases: raw frames in, raw frames out. */
export async function rawDevice(
  hubUrl: string,
  token: string | undefined,
): Promise<{ ws: WebSocket; frames: string[]; next(): Promise<string>; closed: Promise<number> }> {
  const ws = new WebSocket(new URL('/v1/devices/connect', hubUrl.replace(/^http/, 'ws')), { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const frames: string[] = [];
  const waiters: Array<(f: string) => void> = [];
  ws.on('message', (d) => {
    const f = d.toString();
    const w = waiters.shift();
    if (w) w(f);
    else frames.push(f);
  });
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise<void>((r, j) => (ws.once('open', () => r()), ws.once('error', j)));
  return { ws, frames, closed, next: () => (frames.length ? Promise.resolve(frames.shift()!) : new Promise((r) => waiters.push(r))) };
}

export interface HubProcess {
  child: ChildProcess;
  url: string;
  dataDir: string;
  output(): string;
  stop(): Promise<void>;
}

/** `aion serve` in a child process on a free loopback port, with the given configuration file contents. */
export async function startHubProcess(config: Record<string, unknown>, builtins = 'aion.storage,aion.auth,aion.devices'): Promise<HubProcess> {
  const dataDir = tempDir('aion-hub-');
  const configFile = join(dataDir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config));
  const child = spawn(
    process.execPath,
    [cliPath, 'serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--config', configFile, '--builtins', builtins, '--log-level', 'info'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c));
  child.stderr!.on('data', (c: Buffer) => (out += c));
  const url = await waitFor('the hub process to listen', () => /Aion is listening on (http:\/\/\S+)/.exec(out)?.[1], 60_000).catch((err) => {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${out}`);
  });
  return {
    child,
    url,
    dataDir,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise<void>((r) => {
          const t = setTimeout(() => (child.kill('SIGKILL'), r()), 10_000);
          child.once('exit', () => (clearTimeout(t), r()));
        });
      }
      removeDir(dataDir);
    },
  };
}
