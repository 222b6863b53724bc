#!/usr/bin/env -S node --max-semi-space-size=32
import 'reflect-metadata';
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { parseArgs, styleText } from 'node:util';
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { AionError, ErrorCodes, isAionError, type CommandCli } from '@aion/extension-api';
import { connectControl, hasControlSocket } from '../control/controlClient.js';
import { ControlServer } from '../control/controlServer.js';
import { loadConfig, type AionConfig } from '../config/configuration.js';
import { ContributionRegistry } from '../contributions/contributionRegistry.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { loadManifest } from '../registry/manifestLoader.js';
import { CommandsChannel } from '../commands/commandsChannel.js';
import { Kernel } from '../kernel.js';
import { createLogger, logLevelFromEnvironment } from '../logging.js';
import { completionScript } from './completion.js';
import { developExtensions } from './dev.js';
import { SCAFFOLD_KINDS, scaffoldExtension, type ScaffoldKind } from './scaffold.js';
import { superviseWorkers, workerCount, workerIndex } from './workers.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function configFrom(values: Record<string, unknown>): AionConfig {
  const overrides: Record<string, unknown> = {};
  const server: Record<string, unknown> = {};
  if (values.port !== undefined) server.port = Number(values.port);
  if (values.host !== undefined) server.host = values.host;
  if (Object.keys(server).length) overrides.server = server;
  if (values['data-dir']) overrides.dataDir = values['data-dir'];
  return loadConfig({ configPath: values.config as string | undefined, overrides });
}

/** The version of this package (and so of the CLI and kernel). */
export const AION_VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Documented exit codes: scripts rely on them. */
export const ExitCodes = { OK: 0, FAILED: 1, USAGE: 2 } as const;

function logLevelOf(values: Record<string, unknown>, fallback: string): string {
  const level = (values['log-level'] as string | undefined) ?? logLevelFromEnvironment() ?? fallback;
  if (!LOG_LEVELS.includes(level)) throw new AionError(ErrorCodes.CONFIG_INVALID, `--log-level must be one of ${LOG_LEVELS.join(', ')}, not "${level}"`);
  return level;
}

const extensionDirsFrom = (values: Record<string, unknown>) => (values['extensions-dir'] as string[] | undefined)?.map((d) => resolve(d));

/** Starts a kernel with its local control channel; SIGTERM and SIGINT drain it and exit 0. */
export async function startServer(values: Record<string, unknown>, onStop?: () => Promise<void> | void): Promise<{ kernel: Kernel; control?: ControlServer }> {
  const kernel = await Kernel.start({
    config: configFrom(values),
    builtins: builtinsFrom(values),
    extensionDirs: extensionDirsFrom(values),
    logger: createLogger({ level: logLevelOf(values, 'info') }),
  });
  let control: ControlServer | undefined;
  // Of several workers, the first owns the local control channel (one socket per data directory).
  const worker = workerIndex();
  try {
    if (worker === undefined || worker === 0) control = await ControlServer.start(kernel);
  } catch (err) {
    // A socket or secret someone else could read is a reason to stop; a file system without sockets is not.
    if (isAionError(err)) {
      await kernel.stop();
      throw err;
    }
    kernel.logger.warn(
      { err: String(err) },
      'the local control channel is unavailable: aion health, reload and extensions list --running will use HTTP or fail',
    );
  }
  // A worker's primary says where the server listens, once all of them do.
  if (worker === undefined) process.stdout.write(`Aion is listening on ${kernel.url}\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    kernel.logger.info(`${signal} received: draining`);
    await onStop?.();
    await control?.close();
    await kernel.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  return { kernel, control };
}

/** `aion serve`: one kernel, or with `--workers N` a primary that runs N of them on one port. */
async function serve(values: Record<string, unknown>): Promise<'serving'> {
  const count = workerIndex() === undefined ? workerCount(values.workers) : 1;
  if (count === 1) {
    await startServer(values);
    return 'serving';
  }
  configFrom(values); // a bad configuration is one error here, not one per worker
  const logger = createLogger({ level: logLevelOf(values, 'info') }).child({ service: 'aion-primary' });
  await superviseWorkers(count, logger, (url) => process.stdout.write(`Aion is listening on ${url} (${count} workers)\n`));
  return 'serving';
}

/** `--builtins all|none|id,id`: which built-in extensions load. */
function builtinsFrom(values: Record<string, unknown>): boolean | string[] {
  const v = values.builtins as string | undefined;
  if (v === undefined || v === 'all') return true;
  if (v === 'none') return false;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function quietKernel(values: Record<string, unknown>): Kernel {
  return Kernel.load({
    config: configFrom(values),
    builtins: builtinsFrom(values),
    extensionDirs: extensionDirsFrom(values),
    logger: createLogger({ level: 'silent' }),
  });
}

/** `aion extensions list --running`: what the server on this data directory has, asked over the control channel. */
async function listRunning(values: Record<string, unknown>): Promise<number> {
  const client = await connectControl(configFrom(values).dataDir);
  try {
    const rows =
      await client.call<
        Array<{ id: string; version: string; state: string; host: string; hostKey: string; activationMs: number | null; errors?: Array<{ message: string }> }>
      >('extensions.list');
    if (values.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    else
      for (const r of rows)
        process.stdout.write(
          `${r.id.padEnd(32)} ${String(r.version).padEnd(8)} ${r.state.padEnd(10)} ${r.hostKey.padEnd(20)} ${r.activationMs !== null ? `${r.activationMs} ms` : ''}\n`,
        );
    return rows.some((r) => r.state === 'failed') ? 1 : 0;
  } finally {
    client.close();
  }
}

async function listExtensions(values: Record<string, unknown>): Promise<number> {
  if (values.running) return listRunning(values);
  const kernel = quietKernel(values);
  const registry = kernel.get(ExtensionRegistry);
  const rows = [
    ...registry.all().map((r) => ({
      id: r.id,
      version: r.manifest.version,
      state: r.state === 'inactive' ? 'ok' : r.state,
      host: r.hostKind,
      source: r.source,
      problems: [...r.errors, ...r.warnings].map((e) => e.message),
    })),
    ...registry.rejected.map((r) => ({
      id: r.id ?? '?',
      version: '',
      state: 'invalid',
      host: '',
      source: r.manifestPath,
      problems: r.errors.map((e) => e.message),
    })),
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
    const kernel = Kernel.load({
      config: configFrom(values),
      builtins: builtinsFrom(values),
      extensionDirs: [resolve(dir)],
      logger: createLogger({ level: 'silent' }),
    });
    const record = kernel
      .get(ExtensionRegistry)
      .all()
      .find((r) => r.manifestPath === scanned.manifestPath);
    const rejected = kernel.get(ExtensionRegistry).rejected.find((r) => r.manifestPath === scanned.manifestPath);
    for (const e of [...(record?.errors ?? []), ...(rejected?.errors ?? [])])
      if (!problems.includes(`${e.code}: ${e.message}`)) problems.push(`${e.code}: ${e.message}`);
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

type HealthBody = {
  status?: string;
  hosts?: Array<{ key: string; state: string; pid?: number; extensions: string[] }>;
  checks?: Array<{ name: string; status: string; detail?: string; ms?: number }>;
  degraded?: Array<{ reason: string }>;
};

/**
 * `aion health`: liveness, readiness, hosts and every dependency check; 0 only when all is well.
 * Asks the server on this data directory over the control channel, or `--url` over HTTP (an admin
 * token then adds hosts and checks).
 */
async function health(values: Record<string, unknown>): Promise<number> {
  let url = values.url as string | undefined;
  const paint =
    process.stdout.isTTY && !process.env.NO_COLOR
      ? (color: Parameters<typeof styleText>[0], text: string) => styleText(color, text)
      : (_c: unknown, text: string) => text;
  const mark = (status: string) =>
    status === 'ok' || status === 'ready'
      ? paint('green', '✔')
      : status === 'unavailable'
        ? paint('yellow', '–')
        : status === 'degraded'
          ? paint('yellow', '!')
          : paint('red', '✖');
  let answer: { url: string; healthy: boolean; ready: boolean; healthBody: HealthBody; readiness: Record<string, unknown>; httpStatus: number };
  try {
    const config = url ? undefined : configFrom(values);
    if (config && hasControlSocket(config.dataDir)) {
      const client = await connectControl(config.dataDir);
      try {
        const r = await client.call<{ url: string; health: HealthBody; readiness: { ready: boolean; draining: boolean } }>('health');
        const ready = r.readiness.ready && !r.readiness.draining;
        answer = {
          url: r.url,
          healthy: true,
          ready,
          healthBody: r.health,
          readiness: ready ? { status: 'ready' } : { error: { message: r.readiness.draining ? 'shutting down' : 'start-up activations are still running' } },
          httpStatus: 200,
        };
      } finally {
        client.close();
      }
    } else {
      url ??= `http://${config!.server.host.includes(':') ? `[${config!.server.host}]` : config!.server.host}:${config!.server.port}`;
      const token = (values.token as string | undefined) ?? process.env.AION_TOKEN;
      const headers: Record<string, string> = token ? (token.startsWith('aion_') ? { 'x-api-key': token } : { authorization: `Bearer ${token}` }) : {};
      const [h, r] = await Promise.all([
        fetch(`${url}/healthz`, { headers, signal: AbortSignal.timeout(10_000) }),
        fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) }),
      ]);
      answer = {
        url,
        healthy: h.ok,
        ready: r.ok,
        healthBody: (await h.json()) as HealthBody,
        readiness: (await r.json()) as Record<string, unknown>,
        httpStatus: h.status,
      };
    }
  } catch (err) {
    const where = url ?? 'the local server';
    if (values.json) process.stdout.write(JSON.stringify({ url: where, ok: false, healthy: false, ready: false, error: (err as Error).message }) + '\n');
    else process.stdout.write(`Aion at ${where}: ${paint('red', 'unreachable')} (${(err as Error).message})\n`);
    return ExitCodes.FAILED;
  }
  const { healthBody, readiness } = answer;
  const checks = healthBody.checks ?? [];
  const failing = checks.filter((c) => c.status === 'failed' || c.status === 'degraded');
  const healthy = answer.healthy && healthBody.status === 'ok';
  const ok = healthy && answer.ready && failing.length === 0;
  if (values.json) {
    process.stdout.write(
      JSON.stringify(
        { url: answer.url, ok, healthy: answer.healthy, ready: answer.ready, status: healthBody.status, health: healthBody, readiness, checks },
        null,
        2,
      ) + '\n',
    );
    return ok ? ExitCodes.OK : ExitCodes.FAILED;
  }
  const lines = [`Aion at ${answer.url}: ${ok ? paint('green', 'healthy') : paint('red', 'not healthy')}`];
  lines.push(`  ${mark(healthBody.status ?? 'failed')} status ${healthBody.status ?? `HTTP ${answer.httpStatus}`}`);
  lines.push(
    `  ${mark(answer.ready ? 'ready' : 'failed')} ${answer.ready ? 'ready' : `not ready (${(readiness as { error?: { message?: string } }).error?.message ?? 'unknown'})`}`,
  );
  for (const host of healthBody.hosts ?? [])
    lines.push(
      `  ${mark(host.state === 'running' ? 'ok' : 'failed')} host ${host.key} ${host.state}${host.pid ? ` (pid ${host.pid})` : ''}: ${host.extensions.join(', ') || 'no extensions'}`,
    );
  for (const c of checks)
    lines.push(
      `  ${mark(c.status)} ${c.name.padEnd(22)} ${c.status}${c.detail ? `  ${paint('gray', c.detail)}` : ''}${c.ms !== undefined ? paint('gray', ` ${c.ms} ms`) : ''}`,
    );
  for (const d of healthBody.degraded ?? []) lines.push(`  ${mark('degraded')} ${d.reason}`);
  if (!healthBody.hosts) lines.push(paint('gray', '  (pass --token with an admin token or API key for hosts, database, Redis and providers)'));
  process.stdout.write(lines.join('\n') + '\n');
  return ok ? ExitCodes.OK : ExitCodes.FAILED;
}

/** `aion reload <extension>`: the running server restarts that extension's host and activates it again. */
async function reload(extension: string, values: Record<string, unknown>): Promise<number> {
  const client = await connectControl(configFrom(values).dataDir);
  try {
    const r = await client.call<{ host: string; extensions: string[]; ms: number }>('reload', { extension });
    process.stdout.write(`reloaded ${r.extensions.join(', ')} (host ${r.host}) in ${r.ms} ms\n`);
    return ExitCodes.OK;
  } finally {
    client.close();
  }
}

/** Runs a command an extension exposes through `contributes.commands[].cli`: in a kernel of its own, or with `running` in the server on the data directory. */
async function runExtensionCommand(command: string, cli: CommandCli, args: Record<string, unknown>, values: Record<string, unknown>): Promise<number> {
  const config = configFrom(values);
  if (cli.running) {
    // About what the running server holds: asked of it, never of a fresh kernel that holds nothing.
    const client = await connectControl(config.dataDir);
    try {
      printResult(await client.call('commands.execute', { command, args }));
      return ExitCodes.OK;
    } finally {
      client.close();
    }
  }
  // The command runs inside a real kernel on an ephemeral loopback port, so extensions behave as when serving.
  const kernel = await Kernel.start({
    config: { ...config, server: { ...config.server, port: 0, host: '127.0.0.1' } },
    builtins: builtinsFrom(values),
    extensionDirs: extensionDirsFrom(values),
    logger: createLogger({ level: logLevelOf(values, 'warn') }),
  });
  try {
    const commands = kernel.get(CommandsChannel);
    if (cli.stdio) {
      const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
      const out = (await commands.execute(command, [args, lines])) as AsyncIterable<string>;
      for await (const line of out) process.stdout.write(line.endsWith('\n') ? line : line + '\n');
    } else {
      printResult(await commands.execute(command, [args]));
    }
    return ExitCodes.OK;
  } finally {
    await kernel.stop();
  }
}

/** A command's answer on stdout: a string as it is, anything else as indented JSON, nothing for none. */
function printResult(result: unknown): void {
  if (result !== undefined && result !== null) process.stdout.write((typeof result === 'string' ? result : JSON.stringify(result, null, 2)) + '\n');
}

/** The options every built-in verb accepts (so scripts may pass them anywhere); each verb shows the ones it uses. */
const COMMON_OPTIONS: Record<string, () => Option> = {
  config: () => new Option('--config <file>', 'configuration file (default: aion.config.json, or AION_CONFIG)'),
  'data-dir': () => new Option('--data-dir <dir>', 'data directory (default: ./.aion)'),
  'extensions-dir': () =>
    new Option('--extensions-dir <dir>', 'a folder of extensions, or one extension; repeatable').argParser((v: string, previous: string[] | undefined) => [
      ...(previous ?? []),
      v,
    ]),
  builtins: () => new Option('--builtins <which>', 'built-in extensions to load: all, none, or id,id'),
  port: () => new Option('--port <n>', 'port to listen on'),
  host: () => new Option('--host <h>', 'address to listen on'),
  'log-level': () => new Option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`),
  json: () => new Option('--json', 'machine-readable output'),
  dir: () => new Option('--dir <dir>', 'parent folder of the new extension (default: .)'),
  url: () => new Option('--url <url>', 'ask this server over HTTP instead of the local control channel'),
  token: () => new Option('--token <t>', 'admin token or API key for --url (default: AION_TOKEN)'),
  publisher: () => new Option('--publisher <p>', 'publisher part of the extension id (default: me)'),
};
const KERNEL_OPTIONS = ['config', 'data-dir', 'extensions-dir', 'builtins', 'log-level'];

/** Adds every common option (hidden unless `shown`) except those the command defines itself. */
function withCommonOptions(command: Command, shown: string[]): Command {
  const own = new Set(command.options.map((o) => o.long));
  for (const [name, make] of Object.entries(COMMON_OPTIONS)) {
    if (own.has(`--${name}`)) continue;
    command.addOption(make().hideHelp(!shown.includes(name)));
  }
  return command;
}

/** The command's options keyed by their flag names (`data-dir`, not commander's `dataDir`). */
function valuesOf(command: Command): Record<string, unknown> {
  const opts = command.opts();
  const values: Record<string, unknown> = {};
  for (const option of command.options) {
    const value = opts[option.attributeName()];
    if (value !== undefined) values[option.long!.replace(/^--/, '')] = value;
  }
  return values;
}

/** A built-in top-level verb: extension manifests are only read for the others. */
const BUILT_IN_VERBS = new Set(['serve', 'dev', 'extensions', 'health', 'reload', 'config', 'completion']);

interface ExtensionCli {
  command: string;
  cli: CommandCli;
}

/** Commands extensions contribute, found without running any extension code. */
function extensionCommands(argv: string[]): ExtensionCli[] {
  const pre = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, 'data-dir': { type: 'string' }, 'extensions-dir': { type: 'string', multiple: true }, builtins: { type: 'string' } },
    strict: false,
    allowPositionals: true,
  });
  const probe = Kernel.load({
    config: configFrom(pre.values),
    builtins: builtinsFrom(pre.values),
    extensionDirs: extensionDirsFrom(pre.values),
    logger: createLogger({ level: 'silent' }),
  });
  return probe
    .get(ExtensionRegistry)
    .all()
    .flatMap((r) =>
      (r.manifest.contributes?.commands ?? [])
        .filter((c) => c.cli && !BUILT_IN_VERBS.has(c.cli.name.split(' ')[0]!))
        .map((c) => ({ command: c.command, cli: c.cli as CommandCli })),
    );
}

/** `words` under `parent`, creating the intermediate commands (`skills` for `skills install`). */
function commandAt(parent: Command, words: string[]): Command {
  let current = parent;
  for (const word of words) current = current.commands.find((c) => c.name() === word) ?? current.command(word);
  return current;
}

function addExtensionCommand(program: Command, { command, cli }: ExtensionCli, done: (code: Promise<number>) => void): void {
  const words = cli.name.split(' ').filter(Boolean);
  const target = commandAt(program, words);
  if (target.description()) return;
  target.description(cli.description ?? `runs the ${command} command`).allowExcessArguments(true);
  for (const p of cli.positionals ?? []) target.argument(`[${p}]`);
  const names = new Map<string, string>();
  for (const [name, o] of Object.entries(cli.options ?? {})) {
    const flags = `${o.short && o.short !== 'h' && o.short !== 'V' ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ' <value>' : ''}`;
    const option = new Option(flags, o.description ?? '');
    if (o.required) option.makeOptionMandatory();
    target.addOption(option);
    names.set(option.attributeName(), name);
  }
  withCommonOptions(target, KERNEL_OPTIONS);
  target.action((...received: unknown[]) => {
    const me = received.at(-1) as Command;
    const opts = me.opts();
    const args: Record<string, unknown> = {};
    for (const [attribute, name] of names) if (opts[attribute] !== undefined) args[name] = opts[attribute];
    (cli.positionals ?? []).forEach((name, i) => me.args[i] !== undefined && (args[name] = me.args[i]));
    done(runExtensionCommand(command, cli, args, valuesOf(me)));
  });
}

/** The whole command tree: built-in verbs, and extension commands when `withExtensions`. */
export function buildProgram(done: (result: Promise<number | 'serving'>) => void, contributed: ExtensionCli[] = []): Command {
  const program = new Command('aion')
    .description('Aion — a self-hosted AI host whose every feature is an extension')
    .version(AION_VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'describe a command (never runs it)')
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .addHelpText('after', '\nExit codes: 0 success, 1 the command failed (or the server is not healthy), 2 usage error.');
  program
    .command('serve')
    .description('start the server; SIGTERM or SIGINT drain it first')
    .usage(
      '[--port N] [--host H] [--workers N|auto] [--config FILE] [--data-dir DIR] [--extensions-dir DIR]... [--builtins all|none|id,id] [--log-level LEVEL]',
    )
    .addOption(new Option('--workers <n>', 'kernel processes serving the port: a number or auto (every CPU); default 1, auto when NODE_ENV=production'));
  withCommonOptions(program.commands.at(-1)!, [...KERNEL_OPTIONS, 'port', 'host']).action((_o, me: Command) => done(serve(valuesOf(me))));

  const dev = program
    .command('dev')
    .description('serve, rebuild extensions under --extensions-dir on change and reload their host without restarting the kernel');
  withCommonOptions(dev, [...KERNEL_OPTIONS, 'port', 'host']).action((_o, me: Command) =>
    done(developExtensions(valuesOf(me), startServer).then(() => 'serving' as const)),
  );

  const extensions = program.command('extensions').description('installed extensions: list, validate, scaffold');
  const list = extensions
    .command('list')
    .description('installed extensions and their state; exits 1 when one is invalid or skipped')
    .option('--running', 'ask the running server (over the local control channel) what it runs');
  withCommonOptions(list, [...KERNEL_OPTIONS, 'json']).action((_o, me: Command) => done(listExtensions(valuesOf(me))));
  const validate = extensions
    .command('validate')
    .description('check a manifest and its contributions without running any code; exits 1 on errors')
    .argument('<dir>', 'the extension folder');
  withCommonOptions(validate, ['json', 'builtins', 'config']).action((dir: string, _o, me: Command) =>
    done(Promise.resolve(validateExtension(dir, valuesOf(me)))),
  );
  const scaffold = extensions
    .command('new')
    .description('scaffold a working extension with a test and a README')
    .argument('<name>', 'lower-case letters, digits and dashes')
    .addOption(new Option('--kind <kind>', 'what it contributes').choices([...SCAFFOLD_KINDS]).default('route'));
  withCommonOptions(scaffold, ['dir', 'publisher']).action((name: string, _o, me: Command) => {
    const values = valuesOf(me);
    const created = scaffoldExtension(name, {
      dir: values.dir as string | undefined,
      publisher: values.publisher as string | undefined,
      kind: values.kind as ScaffoldKind,
    });
    process.stdout.write(
      `created ${created.dir} (${created.kind})\n${created.dependencies === 'tarballs' ? `@aion/* packages: the tarballs of this checkout (${created.tarballDir})\n` : ''}next: cd ${created.dir} && npm install && npm test\n`,
    );
    done(Promise.resolve(ExitCodes.OK));
  });

  const healthCommand = program.command('health').description('database, Redis, hosts, providers of the running server: exits 0 only when all is well');
  withCommonOptions(healthCommand, ['url', 'json', 'token', 'data-dir', 'config']).action((_o, me: Command) => done(health(valuesOf(me))));
  const reloadCommand = program
    .command('reload')
    .description("restart an extension's host in the running server and activate it again")
    .argument('<extension>', 'extension id, e.g. me.greeter');
  withCommonOptions(reloadCommand, ['data-dir', 'config']).action((id: string, _o, me: Command) => done(reload(id, valuesOf(me))));
  const config = program.command('config').description('configuration');
  withCommonOptions(config.command('print').description('the effective configuration (defaults, file, AION_* variables, flags) as JSON, secrets masked'), [
    'config',
    'data-dir',
    'port',
    'host',
  ]).action((_o, me: Command) => done(Promise.resolve(printConfig(valuesOf(me)))));
  program
    .command('completion')
    .description('print a shell completion script: eval "$(aion completion bash)"')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh')
        throw new CommanderError(ExitCodes.USAGE, 'aion.badShell', `completion is available for bash and zsh, not "${shell}"`);
      process.stdout.write(completionScript(program, shell));
      done(Promise.resolve(ExitCodes.OK));
    });
  for (const e of contributed) addExtensionCommand(program, e, done);
  const describeGroups = (command: Command) =>
    command.commands.forEach((c) => {
      if (!c.description() && c.commands.length > 0) c.description(`${c.commands.map((s) => s.name()).join(', ')} (from extensions)`);
      describeGroups(c);
    });
  describeGroups(program);
  return program;
}

export async function main(argv = process.argv.slice(2)): Promise<number | 'serving'> {
  try {
    const first = argv.find((a) => !a.startsWith('-'));
    const needsExtensions = first === undefined || !BUILT_IN_VERBS.has(first) || first === 'completion';
    let result: Promise<number | 'serving'> | undefined;
    const program = buildProgram((r) => (result = r), needsExtensions ? extensionCommands(argv) : []);
    if (argv.length === 0) {
      program.outputHelp();
      return ExitCodes.USAGE;
    }
    await program.parseAsync(argv, { from: 'user' });
    if (!result) {
      // A group named without a verb (`aion extensions`): its help, as a usage error.
      commandAt(
        program,
        argv.filter((a) => !a.startsWith('-')),
      ).outputHelp();
      return ExitCodes.USAGE;
    }
    return await result;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return ExitCodes.OK;
      if (err.code === 'commander.help') return ExitCodes.USAGE;
      // Unknown options, missing values, unknown commands: a sentence and a pointer to help, never a stack.
      const said = err.message.replace(/^error: /, '');
      const message =
        err.code === 'commander.unknownCommand'
          ? `unknown command "${/'([^']*)'/.exec(said)?.[1] ?? argv.join(' ')}"`
          : err.code === 'commander.missingMandatoryOptionValue'
            ? `${/(--[\w-]+)/.exec(said)?.[1] ?? 'an option'} is required`
            : said.charAt(0).toUpperCase() + said.slice(1);
      process.stderr.write(`aion: ${message}\n(run aion --help, or aion <command> --help)\n`);
      return ExitCodes.USAGE;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      const { address, port } = err as NodeJS.ErrnoException & { address?: string; port?: number };
      process.stderr.write(`aion: ${address ?? 'the address'}:${port ?? ''} is already in use: stop the other server or choose another with --port\n`);
      return ExitCodes.FAILED;
    }
    if (isAionError(err)) {
      process.stderr.write(`aion: ${err.code}: ${err.message}\n`);
      return ExitCodes.FAILED;
    }
    throw err;
  }
}

/** True when node runs this file, directly or through a bin link (`npm install -g`, `npx aion`). */
function invokedDirectly(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
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
