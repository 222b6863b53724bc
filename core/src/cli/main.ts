#!/usr/bin/env node
import 'reflect-metadata';
import { createInterface } from 'node:readline';
import { parseArgs, styleText, type ParseArgsConfig } from 'node:util';
import { resolve } from 'node:path';
import { AionError, ErrorCodes, isAionError, type CommandCli } from '@aion/extension-api';
import { loadConfig, type AionConfig } from '../config/configuration.js';
import { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { loadManifest } from '../registry/manifestLoader.js';
import { KernelEndpoint } from '../hosts/kernelEndpoint.js';
import { Kernel } from '../kernel.js';
import { createLogger, logLevelFromEnvironment } from '../logging.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
import { scaffoldExtension } from './scaffold.js';

const USAGE = `aion — a self-hosted AI host

Usage:
  aion serve [--port N] [--host H] [--config FILE] [--data-dir DIR] [--extensions-dir DIR]... [--builtins all|none|id,id] [--log-level LEVEL]
  aion extensions list [--json]           installed extensions and their state
  aion extensions validate <dir>          check a manifest without running it
  aion extensions new <name> [--dir D]    scaffold a working extension with a test
  aion health [--url URL] [--json] [--token T]  database, Redis, hosts, providers: exit 0 only when all is well
  aion config print [--config FILE]       the effective configuration, secrets masked
  aion <words> [--options]                a command an extension exposes (see: aion help)
`;

/** What `aion <command> --help` prints: it never runs the command. */
const HELP: Record<string, string> = {
  serve: 'aion serve [--port N] [--host H] [--config FILE] [--data-dir DIR] [--extensions-dir DIR]... [--builtins all|none|id,id]\n  Starts the server and keeps it running until SIGTERM or SIGINT, which drain it first.\n',
  'extensions list': 'aion extensions list [--json] [--config FILE] [--extensions-dir DIR]... [--builtins …]\n  Installed extensions with their state, host and problems; exits 1 when one is invalid or skipped.\n',
  'extensions validate': 'aion extensions validate <dir> [--json] [--builtins …]\n  Checks a manifest and its contributions without running any code; exits 1 on errors.\n',
  'extensions new': 'aion extensions new <name> [--dir DIR] [--publisher P]\n  Scaffolds a working extension with a test.\n',
  health: 'aion health [--url URL] [--json] [--token T]\n  Asks a running server whether it is healthy and ready; with an admin token also hosts and every dependency check; exits 1 when anything is not well.\n',
  'config print': 'aion config print [--config FILE] [--data-dir DIR] [--port N] [--host H]\n  The effective configuration (defaults, file, AION_* variables, flags) as JSON, with secrets masked.\n',
};

const common = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  'extensions-dir': { type: 'string', multiple: true },
  port: { type: 'string' },
  host: { type: 'string' },
  json: { type: 'boolean' },
  dir: { type: 'string' },
  url: { type: 'string' },
  publisher: { type: 'string' },
  builtins: { type: 'string' },
  'log-level': { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

function configFrom(values: Record<string, unknown>): AionConfig {
  const overrides: Record<string, unknown> = {};
  const server: Record<string, unknown> = {};
  if (values.port !== undefined) server.port = Number(values.port);
  if (values.host !== undefined) server.host = values.host;
  if (Object.keys(server).length) overrides.server = server;
  if (values['data-dir']) overrides.dataDir = values['data-dir'];
  return loadConfig({ configPath: values.config as string | undefined, overrides });
}

async function serve(values: Record<string, unknown>): Promise<void> {
  const level = (values['log-level'] as string | undefined) ?? logLevelFromEnvironment() ?? 'info';
  if (!LOG_LEVELS.includes(level)) throw new AionError(ErrorCodes.CONFIG_INVALID, `--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${level}"`);
  const kernel = await Kernel.start({ config: configFrom(values), builtins: builtinsFrom(values), extensionDirs: (values['extensions-dir'] as string[] | undefined)?.map((d) => resolve(d)), logger: createLogger({ level }) });
  process.stdout.write(`Aion is listening on ${kernel.url}\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    kernel.logger.info(`${signal} received: draining`);
    await kernel.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/** `--builtins all|none|id,id`: which built-in extensions load. */
function builtinsFrom(values: Record<string, unknown>): boolean | string[] {
  const v = values.builtins as string | undefined;
  if (v === undefined || v === 'all') return true;
  if (v === 'none') return false;
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

function quietKernel(values: Record<string, unknown>): Kernel {
  return Kernel.load({ config: configFrom(values), builtins: builtinsFrom(values), extensionDirs: (values['extensions-dir'] as string[] | undefined)?.map((d) => resolve(d)), logger: createLogger({ level: 'silent' }) });
}

function listExtensions(values: Record<string, unknown>): number {
  const kernel = quietKernel(values);
  const registry = kernel.get(ExtensionRegistry);
  const rows = [
    ...registry.all().map((r) => ({ id: r.id, version: r.manifest.version, state: r.state === 'inactive' ? 'ok' : r.state, host: r.hostKind, source: r.source, problems: [...r.errors, ...r.warnings].map((e) => e.message) })),
    ...registry.rejected.map((r) => ({ id: r.id ?? '?', version: '', state: 'invalid', host: '', source: r.manifestPath, problems: r.errors.map((e) => e.message) })),
  ];
  if (values.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  else {
    for (const r of rows) {
      process.stdout.write(`${r.id.padEnd(32)} ${r.version.padEnd(8)} ${r.state.padEnd(8)} ${r.host.padEnd(9)} ${r.source}\n`);
      for (const p of r.problems) process.stdout.write(`    ${p}\n`);
    }
  }
  return rows.some((r) => r.state === 'invalid' || r.state === 'skipped') ? 1 : 0;
}

function validateExtension(dir: string | undefined, values: Record<string, unknown>): number {
  if (!dir) {
    process.stderr.write('usage: aion extensions validate <dir>\n');
    return 2;
  }
  const scanned = loadManifest(resolve(dir), 'external');
  const problems = scanned.errors.map((e) => `${e.code}: ${e.message}`);
  if (scanned.manifest) {
    // Check contributions against the points the installed extensions declare, without running anything.
    const kernel = Kernel.load({ config: configFrom(values), builtins: builtinsFrom(values), extensionDirs: [resolve(dir)], logger: createLogger({ level: 'silent' }) });
    const record = kernel.get(ExtensionRegistry).all().find((r) => r.manifestPath === scanned.manifestPath);
    const rejected = kernel.get(ExtensionRegistry).rejected.find((r) => r.manifestPath === scanned.manifestPath);
    for (const e of [...(record?.errors ?? []), ...(rejected?.errors ?? [])]) if (!problems.includes(`${e.code}: ${e.message}`)) problems.push(`${e.code}: ${e.message}`);
    for (const w of record?.warnings ?? []) problems.push(`warning ${w.code}: ${w.message}`);
    void kernel.get(ContributionRegistry);
  }
  if (values.json) process.stdout.write(JSON.stringify({ valid: !problems.some((p) => !p.startsWith('warning')), id: scanned.id, problems }, null, 2) + '\n');
  else if (problems.length === 0) process.stdout.write(`${scanned.id}: valid\n`);
  else for (const p of problems) process.stdout.write(`${p}\n`);
  return problems.some((p) => !p.startsWith('warning')) ? 1 : 0;
}

const SECRET_KEY = /(secret|password|passwd|token|apikey|api_key|credential|private)/i;

/** A copy of `value` fit to print: secret-looking keys and the password part of URLs masked. */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (SECRET_KEY.test(key) && value.length > 0) return '********';
    return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]+@/i, '$1:********@');
  }
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v, key));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskSecrets(v, k)]));
  return value;
}

function printConfig(values: Record<string, unknown>): number {
  process.stdout.write(JSON.stringify(maskSecrets(configFrom(values)), null, 2) + '\n');
  return 0;
}

/** `aion health`: liveness, readiness and, with an admin token, hosts and every dependency check; 0 only when all is well. */
async function health(values: Record<string, unknown>): Promise<number> {
  let url = values.url as string | undefined;
  if (!url) {
    const config = configFrom(values);
    url = `http://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${config.server.port}`;
  }
  const token = (values.token as string | undefined) ?? process.env.AION_TOKEN;
  const headers: Record<string, string> = token ? (token.startsWith('aion_') ? { 'x-api-key': token } : { authorization: `Bearer ${token}` }) : {};
  const paint = process.stdout.isTTY && !process.env.NO_COLOR ? (color: Parameters<typeof styleText>[0], text: string) => styleText(color, text) : (_c: unknown, text: string) => text;
  const mark = (status: string) => (status === 'ok' || status === 'ready' ? paint('green', '✔') : status === 'unavailable' ? paint('yellow', '–') : status === 'degraded' ? paint('yellow', '!') : paint('red', '✖'));
  try {
    const [h, r] = await Promise.all([fetch(`${url}/healthz`, { headers, signal: AbortSignal.timeout(10_000) }), fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) })]);
    const healthBody = (await h.json()) as { status?: string; hosts?: Array<{ key: string; state: string; pid?: number; extensions: string[] }>; checks?: Array<{ name: string; status: string; detail?: string; ms?: number }>; degraded?: Array<{ reason: string }> };
    const readiness = (await r.json()) as Record<string, unknown>;
    const checks = healthBody.checks ?? [];
    const failing = checks.filter((c) => c.status === 'failed' || c.status === 'degraded');
    const healthy = h.ok && healthBody.status === 'ok';
    const ok = healthy && r.ok && failing.length === 0;
    if (values.json) {
      process.stdout.write(JSON.stringify({ url, ok, healthy: h.ok, ready: r.ok, status: healthBody.status, health: healthBody, readiness, checks }, null, 2) + '\n');
      return ok ? 0 : 1;
    }
    const lines = [`Aion at ${url}: ${ok ? paint('green', 'healthy') : paint('red', 'not healthy')}`];
    lines.push(`  ${mark(healthBody.status ?? 'failed')} status ${healthBody.status ?? `HTTP ${h.status}`}`);
    lines.push(`  ${mark(r.ok ? 'ready' : 'failed')} ${r.ok ? 'ready' : `not ready (${(readiness as { error?: { message?: string } }).error?.message ?? r.status})`}`);
    for (const host of healthBody.hosts ?? []) lines.push(`  ${mark(host.state === 'running' ? 'ok' : 'failed')} host ${host.key} ${host.state}${host.pid ? ` (pid ${host.pid})` : ''}: ${host.extensions.join(', ') || 'no extensions'}`);
    for (const c of checks) lines.push(`  ${mark(c.status)} ${c.name.padEnd(22)} ${c.status}${c.detail ? `  ${paint('gray', c.detail)}` : ''}${c.ms !== undefined ? paint('gray', ` ${c.ms} ms`) : ''}`);
    for (const d of healthBody.degraded ?? []) lines.push(`  ${mark('degraded')} ${d.reason}`);
    if (!healthBody.hosts) lines.push(paint('gray', '  (pass --token with an admin token or API key for hosts, database, Redis and providers)'));
    process.stdout.write(lines.join('\n') + '\n');
    return ok ? 0 : 1;
  } catch (err) {
    if (values.json) process.stdout.write(JSON.stringify({ url, ok: false, healthy: false, ready: false, error: (err as Error).message }) + '\n');
    else process.stdout.write(`Aion at ${url}: ${paint('red', 'unreachable')} (${(err as Error).message})\n`);
    return 1;
  }
}

/** Runs a command an extension exposes through `contributes.commands[].cli`, in a kernel of its own. */
async function extensionCommand(words: string[], argv: string[]): Promise<number | undefined> {
  const pre = parseArgs({ args: argv, options: common, strict: false, allowPositionals: true });
  const config = configFrom(pre.values);
  const builtins = builtinsFrom(pre.values);
  const extensionDirs = (pre.values['extensions-dir'] as string[] | undefined)?.map((d) => resolve(d));
  const probe = Kernel.load({ config, builtins, extensionDirs, logger: createLogger({ level: 'silent' }) });
  const candidates = probe
    .get(ExtensionRegistry)
    .all()
    .flatMap((r) => (r.manifest.contributes?.commands ?? []).filter((c) => c.cli).map((c) => ({ command: c.command, cli: c.cli as CommandCli })));
  const match = candidates.filter((c) => words.join(' ').startsWith(c.cli.name)).sort((a, b) => b.cli.name.length - a.cli.name.length)[0];
  if (match && (argv.includes('--help') || argv.includes('-h'))) {
    const options = Object.entries(match.cli.options ?? {}).map(([name, o]) => `  --${name}${o.short ? `, -${o.short}` : ''}${o.type === 'string' ? ' <value>' : ''}${o.required ? ' (required)' : ''}  ${o.description ?? ''}`);
    process.stdout.write(`aion ${match.cli.name}${(match.cli.positionals ?? []).map((p) => ` <${p}>`).join('')} [--options]\n  ${match.cli.description ?? ''}\n${options.join('\n')}\n`);
    return 0;
  }
  if (words[0] === 'help' || !match) {
    if (words[0] !== 'help') return undefined;
    process.stdout.write(USAGE + '\nCommands from extensions:\n');
    for (const c of candidates) process.stdout.write(`  aion ${c.cli.name.padEnd(28)} ${c.cli.description ?? ''}\n`);
    return 0;
  }
  const nameWords = match.cli.name.split(' ').length;
  const options: ParseArgsConfig['options'] = { ...common };
  for (const [name, o] of Object.entries(match.cli.options ?? {})) options[name] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  const parsed = parseArgs({ args: [...words.slice(nameWords), ...argv], options, allowPositionals: true, strict: true });
  const args: Record<string, unknown> = {};
  for (const name of Object.keys(match.cli.options ?? {})) if (parsed.values[name] !== undefined) args[name] = parsed.values[name];
  (match.cli.positionals ?? []).forEach((name, i) => parsed.positionals[i] !== undefined && (args[name] = parsed.positionals[i]));
  for (const [name, o] of Object.entries(match.cli.options ?? {})) {
    if (o.required && args[name] === undefined) {
      process.stderr.write(`aion ${match.cli.name}: --${name} is required\n`);
      return 2;
    }
  }
  // The command runs inside a real kernel on an ephemeral loopback port, so extensions behave as when serving.
  const kernel = await Kernel.start({ config: { ...config, server: { ...config.server, port: 0, host: '127.0.0.1' } }, builtins, extensionDirs, logger: createLogger({ level: (pre.values['log-level'] as string | undefined) ?? logLevelFromEnvironment() ?? 'warn' }) });
  try {
    const endpoint = kernel.get(KernelEndpoint);
    if (match.cli.stdio) {
      const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
      const out = (await endpoint.executeCommand(match.command, [args, lines])) as AsyncIterable<string>;
      for await (const line of out) process.stdout.write(line.endsWith('\n') ? line : line + '\n');
    } else {
      const result = await endpoint.executeCommand(match.command, [args]);
      if (result !== undefined && result !== null) process.stdout.write((typeof result === 'string' ? result : JSON.stringify(result, null, 2)) + '\n');
    }
    return 0;
  } finally {
    await kernel.stop();
  }
}

export async function main(argv = process.argv.slice(2)): Promise<number | 'serving'> {
  try {
    return await run(argv);
  } catch (err) {
    // parseArgs' own errors (unknown option, missing value): a sentence and the usage, never a stack.
    if (typeof (err as { code?: unknown }).code === 'string' && (err as { code: string }).code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`aion: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      const { address, port } = err as NodeJS.ErrnoException & { address?: string; port?: number };
      process.stderr.write(`aion: ${address ?? 'the address'}:${port ?? ''} is already in use: stop the other server or choose another with --port\n`);
      return 1;
    }
    throw err;
  }
}

async function run(argv: string[]): Promise<number | 'serving'> {
  const words: string[] = [];
  while (argv[0] && !argv[0].startsWith('-')) words.push(argv.shift()!);
  const parsed = () => parseArgs({ args: argv, options: common, allowPositionals: true, strict: true });
  const [cmd, sub, arg] = words;
  if (!cmd) {
    const help = argv.includes('--help') || argv.includes('-h');
    process.stdout.write(USAGE);
    return help ? 0 : 2;
  }
  // `--help` describes a command and never runs it.
  const builtIn = HELP[`${cmd} ${sub ?? ''}`.trim()] ?? HELP[cmd];
  if (builtIn && (argv.includes('--help') || argv.includes('-h'))) {
    process.stdout.write(builtIn);
    return 0;
  }
  if (cmd === 'serve') {
    await serve(parsed().values);
    return 'serving';
  }
  if (cmd === 'extensions' && sub === 'list') return listExtensions(parsed().values);
  if (cmd === 'extensions' && sub === 'validate') return validateExtension(arg, parsed().values);
  if (cmd === 'extensions' && sub === 'new') {
    if (!arg) {
      process.stderr.write('usage: aion extensions new <name> [--dir DIR] [--publisher P]\n');
      return 2;
    }
    const values = parsed().values;
    const dir = scaffoldExtension(arg, { dir: values.dir as string | undefined, publisher: values.publisher as string | undefined });
    process.stdout.write(`created ${dir}\nnext: cd ${dir} && npm install && npm test\n`);
    return 0;
  }
  if (cmd === 'health') return health(parsed().values);
  if (cmd === 'config' && sub === 'print') return printConfig(parsed().values);
  const result = await extensionCommand(words, argv);
  if (result !== undefined) return result;
  process.stderr.write(`aion: unknown command "${words.join(' ')}"\n\n${USAGE}`);
  return 2;
}

const invokedDirectly = process.argv[1] && resolve(process.argv[1]).replace(/\.js$/, '') === new URL(import.meta.url).pathname.replace(/\.js$/, '');
if (invokedDirectly || process.argv[1]?.endsWith('/aion')) {
  main().then(
    (code) => {
      if (code !== 'serving') process.exit(code);
    },
    (err) => {
      process.stderr.write(`aion: ${isAionError(err) ? `${err.code}: ${err.message}` : (err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
