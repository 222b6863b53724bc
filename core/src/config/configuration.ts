import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { AionError, ErrorCodes } from '@aion/extension-api';

/** The newest configuration file layout. Older files are upgraded in memory at load. */
export const CONFIG_SCHEMA_VERSION = 2;

export interface ServerConfig {
  host: string;
  port: number;
  /** Default request body limit in bytes. */
  bodyLimit: number;
  /** Requests in flight before new ones get 503 with Retry-After. */
  maxInFlight: number;
  requestTimeoutMs: number;
  /** How long SIGTERM waits for in-flight requests, then for deactivation. */
  drainTimeoutMs: number;
  deactivateTimeoutMs: number;
  /** Request headers must arrive within this long, else 408 (Node's headersTimeout). */
  headersTimeoutMs: number;
  /** A whole request, headers and body, must arrive within this long, else 408 (Node's requestTimeout). */
  receiveTimeoutMs: number;
  /** A body delivering fewer than `minBytes` in an `intervalMs` is cut off with 408. */
  bodyProgress: { minBytes: number; intervalMs: number };
  /** Open connections one client address may hold (trusted proxies are exempt); 0 for no cap. */
  maxConnectionsPerIp: number;
  /** Deepest nesting of arrays and objects a JSON body may have. */
  jsonMaxDepth: number;
  /** Peers (addresses or CIDRs) whose X-Forwarded-For names the client. */
  trustedProxies: string[];
  /** Token bucket per socket.io or WebSocket connection; a client refused this many times in a minute is disconnected. */
  realtime: {
    messagesPerSecond: number;
    burst: number;
    refusalsBeforeDisconnect: number;
    /** The most a WebSocket route's own `messages` limit may raise a connection's limit to: the operator's word over a manifest's. */
    routeCeiling: { messagesPerSecond: number; burst: number };
  };
  /**
   * Redis shared by several kernels (`--workers`, or several machines): socket.io publications reach
   * clients connected to any of them. `AION_REDIS_URL` sets it. Without it, each kernel's are its own.
   */
  redisUrl?: string;
  /**
   * Presence of this kernel among those sharing `redisUrl` (`aion.cluster`): renewed every
   * `heartbeatMs`; a kernel silent for `livenessMs` is taken for gone (its tasks may be taken over).
   */
  cluster: { heartbeatMs: number; livenessMs: number };
}

export interface HostsConfig {
  pingIntervalMs: number;
  /** A host that does not answer a ping within this long is unresponsive. */
  unresponsiveAfterMs: number;
  activationTimeoutMs: number;
  restartBackoffMs: number;
  maxRestartBackoffMs: number;
  /** Crashes within `crashWindowMs` after which a host's extensions are disabled. */
  maxCrashes: number;
  crashWindowMs: number;
}

/** What the operator grants one extension beyond its manifest. */
export interface ExtensionGrant {
  /** Commands declared `access: "privileged"` (or another extension's `private` ones) this extension may execute. */
  commands?: string[];
  /** Extension ids (`aion.auth`) or single methods (`aion.auth#createUser`) of privileged APIs it may call. */
  apis?: string[];
  /** Secrets owned by other extensions (or by the operator) it may read. */
  secrets?: string[];
  /** Hooks declared privileged (the kernel's `http.authenticate`, `realtime.authorize`) it may tap. */
  hooks?: string[];
  /** Extra `host:port` entries appended to its network allow-list. */
  network?: string[];
  /** Lets an extension that is not built in run in the kernel host, with the kernel's full authority. */
  kernelHost?: boolean;
  /** Lets an extension that is not built in start child processes (they are not bound by Node's permission model). */
  childProcess?: boolean;
  /** Lets an extension that is not built in declare `filesystem: "all"`. */
  filesystem?: 'all';
  /** Lets an extension that is not built in load native addons (they are not bound by Node's permission model). */
  addons?: boolean;
}

export interface PermissionsConfig {
  /**
   * `enforce` (default): an extension starts only where the machine enforces its declared permissions.
   * `advisory`: start it anyway where the machine cannot; reported in logs, /healthz and /v1/extensions.
   */
  enforcement: 'enforce' | 'advisory';
  /** Operator grants, keyed by extension id. */
  grants: Record<string, ExtensionGrant>;
  /** Secret names that may fall back to the process environment by their bare name, for their owner only. */
  environmentSecrets: string[];
}

export interface AionConfig {
  schemaVersion: number;
  dataDir: string;
  server: ServerConfig;
  hosts: HostsConfig;
  /** Per-extension sections, keyed by extension id. */
  extensions: Record<string, Record<string, unknown>>;
  /** Extension ids that are not loaded. */
  disabledExtensions: string[];
  /**
   * Host kind per extension id, in place of its manifest's `aion.host` — e.g. a built-in provider moved
   * from the kernel host to `dedicated`, where its network allow-list is enforced by the operating system.
   */
  placement: Record<string, 'kernel' | 'shared' | 'dedicated'>;
  secretsFile?: string;
  permissions: PermissionsConfig;
}

export const defaultConfig = (): AionConfig => ({
  schemaVersion: CONFIG_SCHEMA_VERSION,
  dataDir: '.aion',
  server: {
    host: '127.0.0.1',
    port: 8080,
    bodyLimit: 1024 * 1024,
    maxInFlight: 1024,
    requestTimeoutMs: 60_000,
    drainTimeoutMs: 10_000,
    deactivateTimeoutMs: 5_000,
    headersTimeoutMs: 20_000,
    receiveTimeoutMs: 120_000,
    bodyProgress: { minBytes: 1024, intervalMs: 10_000 },
    maxConnectionsPerIp: 256,
    jsonMaxDepth: 64,
    trustedProxies: [],
    realtime: { messagesPerSecond: 50, burst: 100, refusalsBeforeDisconnect: 100, routeCeiling: { messagesPerSecond: 5000, burst: 10000 } },
    cluster: { heartbeatMs: 2_000, livenessMs: 6_000 },
  },
  hosts: {
    pingIntervalMs: 1_000,
    unresponsiveAfterMs: 3_000,
    activationTimeoutMs: 30_000,
    restartBackoffMs: 200,
    maxRestartBackoffMs: 10_000,
    maxCrashes: 3,
    crashWindowMs: 5 * 60_000,
  },
  extensions: {},
  disabledExtensions: [],
  placement: {},
  permissions: {
    enforcement: 'enforce',
    grants: {},
    environmentSecrets: ['OPENAI_API_KEY', 'AZURE_OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'OLLAMA_API_KEY'],
  },
});

const names = { type: 'array', items: { type: 'string', minLength: 1 } };

/** An object that takes only the properties listed: an unknown key is a typo the operator should hear about. */
const only = (properties: Record<string, unknown>) => ({ type: 'object', properties, additionalProperties: false });
const int = (minimum: number, maximum?: number) => ({ type: 'integer', minimum, ...(maximum === undefined ? {} : { maximum }) });
const flag = { type: 'boolean' };

const kernelConfigSchema = only({
  schemaVersion: int(1),
  dataDir: { type: 'string', minLength: 1 },
  secretsFile: { type: 'string' },
  server: only({
    host: { type: 'string', minLength: 1 },
    port: int(0, 65535),
    bodyLimit: int(0),
    maxInFlight: int(1),
    requestTimeoutMs: int(1),
    drainTimeoutMs: int(0),
    deactivateTimeoutMs: int(0),
    headersTimeoutMs: int(1),
    receiveTimeoutMs: int(1),
    bodyProgress: only({ minBytes: int(1), intervalMs: int(1) }),
    maxConnectionsPerIp: int(0),
    jsonMaxDepth: int(1),
    trustedProxies: names,
    redisUrl: { type: 'string', pattern: '^rediss?://' },
    cluster: only({ heartbeatMs: int(100), livenessMs: int(300) }),
    realtime: only({
      messagesPerSecond: { type: 'number', exclusiveMinimum: 0 },
      burst: int(1),
      refusalsBeforeDisconnect: int(1),
      routeCeiling: only({ messagesPerSecond: { type: 'number', exclusiveMinimum: 0 }, burst: int(1) }),
    }),
  }),
  hosts: only(Object.fromEntries(Object.keys(defaultConfig().hosts).map((k) => [k, int(0)]))),
  extensions: { type: 'object', additionalProperties: { type: 'object' } },
  disabledExtensions: { type: 'array', items: { type: 'string' } },
  placement: { type: 'object', additionalProperties: { enum: ['kernel', 'shared', 'dedicated'] } },
  permissions: only({
    enforcement: { enum: ['enforce', 'advisory'] },
    grants: {
      type: 'object',
      additionalProperties: only({
        commands: names,
        apis: names,
        hooks: names,
        secrets: names,
        network: names,
        kernelHost: flag,
        childProcess: flag,
        filesystem: { const: 'all' },
        addons: flag,
      }),
    },
    environmentSecrets: names,
  }),
});

/** Version 1 files were flat: `{ port, host, dataDir, "<extension id>": {...} }`. */
function upgradeFromV1(raw: Record<string, unknown>): Record<string, unknown> {
  const { port, host, dataDir, schemaVersion: _v, ...rest } = raw;
  const server: Record<string, unknown> = {};
  if (port !== undefined) server.port = port;
  if (host !== undefined) server.host = host;
  const extensions: Record<string, unknown> = {};
  const out: Record<string, unknown> = { schemaVersion: CONFIG_SCHEMA_VERSION, server, extensions };
  if (dataDir !== undefined) out.dataDir = dataDir;
  for (const [key, value] of Object.entries(rest)) {
    if (key.includes('.')) extensions[key] = value;
    else out[key] = value;
  }
  return out;
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(source)) {
    const existing = target[key];
    if (value && typeof value === 'object' && !Array.isArray(value) && existing && typeof existing === 'object' && !Array.isArray(existing)) {
      deepMerge(existing as Record<string, unknown>, value as Record<string, unknown>);
    } else target[key] = value;
  }
  return target;
}

function parseEnvValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

/**
 * `AION_PORT`, `AION_HOST`, `AION_DATA_DIR`, `LOCAL_AI_ENABLED`, `LOCAL_AI_MODEL_PATH` are shortcuts; any other key is
 * `AION_CONFIG__<path>` with `__` between segments, e.g. `AION_CONFIG__EXTENSIONS__AION_HELLO__GREETING`.
 * Segments match existing or declared keys case-insensitively with `.` and `-` read as `_`.
 */
export function environmentOverrides(env: NodeJS.ProcessEnv, knownKeys: (path: string[]) => string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const set = (path: string[], value: unknown) => {
    let node = out;
    for (const part of path.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]!] = value;
  };
  if (env.AION_PORT) set(['server', 'port'], parseEnvValue(env.AION_PORT));
  if (env.AION_HOST) set(['server', 'host'], env.AION_HOST);
  if (env.AION_DATA_DIR) set(['dataDir'], env.AION_DATA_DIR);
  if (env.AION_REDIS_URL) set(['server', 'redisUrl'], env.AION_REDIS_URL);
  // The local model's documented names, shared with other self-hosted AI stacks.
  if (env.LOCAL_AI_ENABLED) set(['extensions', 'aion.provider-llamacpp', 'enabled'], /^(1|true|yes|on)$/i.test(env.LOCAL_AI_ENABLED.trim()));
  if (env.LOCAL_AI_MODEL_PATH) set(['extensions', 'aion.provider-llamacpp', 'modelPath'], env.LOCAL_AI_MODEL_PATH);
  const norm = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, '');
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('AION_CONFIG__') || value === undefined) continue;
    const segments = name.slice('AION_CONFIG__'.length).split('__');
    const path: string[] = [];
    for (const segment of segments) {
      const match = knownKeys(path).find((k) => norm(k) === norm(segment));
      path.push(match ?? segment.toLowerCase());
    }
    set(path, parseEnvValue(value));
  }
  return out;
}

export function formatAjvErrors(errors: ErrorObject[] | null | undefined, prefix = ''): string[] {
  return (errors ?? []).map((e) => {
    const where = `${prefix}${e.instancePath || ''}` || '/';
    const extra =
      e.keyword === 'additionalProperties'
        ? ` (${(e.params as { additionalProperty: string }).additionalProperty})`
        : e.keyword === 'enum'
          ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})`
          : '';
    return `${where}: ${e.message ?? 'is invalid'}${extra}`;
  });
}

export interface LoadConfigOptions {
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Values that win over the file and the environment (CLI flags, test kernels). */
  overrides?: Record<string, unknown>;
}

/** Loads the kernel's part of the configuration; extension sections are validated once manifests are known. */
export function loadConfig(options: LoadConfigOptions = {}): AionConfig {
  const env = options.env ?? process.env;
  const configPath = options.configPath ?? env.AION_CONFIG;
  let fromFile: Record<string, unknown> = {};
  if (configPath) {
    const file = resolve(configPath);
    if (!existsSync(file)) throw new AionError(ErrorCodes.CONFIG_INVALID, `configuration file ${file} does not exist`);
    try {
      fromFile = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new AionError(ErrorCodes.CONFIG_INVALID, `configuration file ${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile))
      throw new AionError(ErrorCodes.CONFIG_INVALID, `configuration file ${file} must hold a JSON object`);
    const version = (fromFile.schemaVersion as number | undefined) ?? 1;
    if (version > CONFIG_SCHEMA_VERSION)
      throw new AionError(
        ErrorCodes.CONFIG_INVALID,
        `configuration file ${file} has schemaVersion ${version}; this Aion understands up to ${CONFIG_SCHEMA_VERSION}`,
      );
    if (version < 2) fromFile = upgradeFromV1(fromFile);
  }
  const merged = deepMerge(defaultConfig() as unknown as Record<string, unknown>, fromFile);
  const knownKeys = (path: string[]) => {
    let node: unknown = merged;
    for (const p of path) node = (node as Record<string, unknown> | undefined)?.[p];
    return node && typeof node === 'object' ? Object.keys(node) : [];
  };
  deepMerge(merged, environmentOverrides(env, knownKeys));
  if (options.overrides) deepMerge(merged, options.overrides);
  const ajv = new Ajv({ allErrors: true });
  if (!ajv.validate(kernelConfigSchema, merged)) {
    throw new AionError(ErrorCodes.CONFIG_INVALID, `invalid configuration: ${formatAjvErrors(ajv.errors).join('; ')}`, {
      details: formatAjvErrors(ajv.errors),
    });
  }
  const config = merged as unknown as AionConfig;
  const { heartbeatMs, livenessMs } = config.server.cluster;
  if (livenessMs < 2 * heartbeatMs)
    throw new AionError(
      ErrorCodes.CONFIG_INVALID,
      `server.cluster.livenessMs (${livenessMs}) must be at least twice server.cluster.heartbeatMs (${heartbeatMs}), or one late renewal would take a live kernel for gone`,
    );
  config.dataDir = resolve(config.dataDir);
  return config;
}
