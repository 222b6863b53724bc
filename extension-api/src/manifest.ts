/** The manifest an extension author writes: its package.json, VS Code style. */

export type HostKind = 'kernel' | 'shared' | 'dedicated' | 'remote';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type HookKind = 'series' | 'parallel' | 'waterfall' | 'bail';

export interface RouteContribution {
  method: HttpMethod;
  /** A path-to-regexp 8 path, e.g. `/v1/sessions/:id` or `/v1/files/*rest`. */
  path: string;
  /** Scopes the caller must hold; enforced by the kernel after `http.authenticate`. */
  scopes?: string[];
  /** `required` (default when scopes are declared), `optional` (default otherwise) or `none`. */
  auth?: 'required' | 'optional' | 'none';
  /** The handler answers with a server-sent-event stream. */
  stream?: boolean;
  /** A `GET` route that upgrades to a WebSocket: the handler gets `request.messages` and returns `{ stream }`. */
  websocket?: boolean;
  /**
   * A WebSocket route's own limit of messages a connection may send (default: the server's
   * `server.realtime`): for a protocol with flow control of its own, such as a device streaming a
   * model's answer. Past it, messages are refused with `RATE_LIMITED` as under the default.
   */
  messages?: { perSecond: number; burst: number };
  /** Request body limit in bytes; the kernel default applies when absent. */
  bodyLimit?: number;
  /** Per-request timeout in milliseconds (not applied to streams after their first event). */
  timeoutMs?: number;
  description?: string;
  /** JSON schema of the request body, published in the OpenAPI document (the handler still validates). */
  requestSchema?: Record<string, unknown>;
  /** JSON schema of a successful answer's body, published in the OpenAPI document. */
  responseSchema?: Record<string, unknown>;
  /**
   * `openai`: error bodies also carry OpenAI's `type` and `param`, so OpenAI client libraries map them
   * to their error classes (for routes that speak the OpenAI API). Default `aion`: `{ code, message, details }`.
   */
  errorFormat?: 'aion' | 'openai';
}

export interface CliOption {
  type: 'string' | 'boolean';
  short?: string;
  description?: string;
  required?: boolean;
}

/** Exposes a command as `aion <name> [--options]`; the command receives the parsed options object. */
export interface CommandCli {
  /** Words after `aion`, e.g. `users create`. */
  name: string;
  description?: string;
  options?: Record<string, CliOption>;
  /** Names given to positional arguments, in order (they join the options object). */
  positionals?: string[];
  /** Long-running stdio command: receives stdin lines as a stream and returns a stream of stdout lines. */
  stdio?: boolean;
  /**
   * Runs in the server already running on the data directory (over its local control channel), not in a
   * kernel of its own: for commands about what that server holds in memory, such as its connected devices.
   */
  running?: boolean;
}

/**
 * Who may call a command or an API: `public` — the kernel and any extension; `privileged` — the
 * kernel, extensions in the kernel host, and extensions the operator grants it to by name
 * (`permissions.grants["<id>"].commands` / `.apis`). A manifest alone never grants a privileged call.
 */
export type CallAccess = 'public' | 'privileged';

export interface CommandContribution {
  command: string;
  title?: string;
  cli?: CommandCli;
  /** Default `public`. */
  access?: CallAccess;
  /**
   * A `privileged` command an extension may still run for an authenticated user: the caller passes
   * that user's credentials with `commands.executeFor()` and the kernel checks they hold these scopes.
   */
  scopes?: string[];
}

export interface HookContribution {
  name: string;
  kind: HookKind;
  description?: string;
  /** Who may tap it: any extension (`public`, default) or only privileged ones, like the kernel's own hooks. */
  tap?: CallAccess;
  /**
   * Who may call it: any extension (`public`, default) or only the extension that declares it (`owner`),
   * for a hook whose payload its owner vouches for (a principal it authenticated), so no other extension
   * can hand the taps a payload of its own making. Enforced by the kernel.
   */
  call?: 'public' | 'owner';
}

/** A secret this extension owns: only it reads the value, unless the operator grants it to another. */
export interface SecretContribution {
  /** A name such as `OPENAI_API_KEY`, or a prefix such as `SKILL_*`. */
  name: string;
  description?: string;
}

/** Who may call this extension's public API (what `activate` returns). */
export interface ApiAccessDeclaration {
  /** Default for every method; `public` when absent. */
  access?: CallAccess;
  /** Per-method overrides. */
  methods?: Record<string, CallAccess>;
}

export interface ContributionPointDeclaration {
  /** JSON schema every entry of this point must satisfy. */
  schema: Record<string, unknown>;
  /** Activation-event prefix: an entry `{ id: "x" }` implies `<prefix>:x`. */
  activationEventPrefix?: string;
  description?: string;
}

export interface ExtensionPermissions {
  /** `deny`, or an allow-list of `host:port` (`*` wildcards allowed in either part). */
  network?: 'deny' | string[];
  /**
   * `none` (default), `read`/`write` its own storage folder, or `all`: the whole filesystem, the
   * kernel's data included — an extension not built in gets `all` only by an operator grant.
   */
  filesystem?: 'none' | 'read' | 'write' | 'all';
  /** Names the extension may read; `PREFIX_*` covers every name starting with `PREFIX_`. */
  secrets?: string[];
  /** Child processes escape Node's permission model, so one not built in gets this only by an operator grant. */
  childProcess?: boolean;
  /** Native addons (`.node` files) run outside Node's permission model, so one not built in gets this only by an operator grant. */
  addons?: boolean;
}

export interface ExtensionResources {
  memoryMb?: number;
  activationTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export interface ExtensionManifest {
  name: string;
  publisher: string;
  version: string;
  displayName?: string;
  description?: string;
  main?: string;
  engines: { aion: string; [engine: string]: string };
  activationEvents?: string[];
  extensionDependencies?: string[];
  contributes?: {
    contributionPoints?: Record<string, ContributionPointDeclaration>;
    configuration?: Record<string, unknown>;
    routes?: RouteContribution[];
    commands?: CommandContribution[];
    hooks?: HookContribution[];
    secrets?: SecretContribution[];
    [point: string]: unknown;
  };
  aion?: {
    host?: HostKind;
    bootFailure?: 'skip' | 'abort';
    permissions?: ExtensionPermissions;
    resources?: ExtensionResources;
    api?: ApiAccessDeclaration;
    /**
     * What a spoke offers its hub from this extension (`aion spoke`): `skills` — all its contributed
     * skills (`true`) or these ids; `models` — likewise for its models. Absent: nothing.
     */
    expose?: ExposeDeclaration;
    /**
     * Contribution points this extension contributes to only when their owner is installed (the devices'
     * provider, where a router is): no `CONTRIBUTION_POINT_UNKNOWN` warning for them when it is not.
     */
    optionalPoints?: string[];
  };
  [key: string]: unknown;
}

export interface ExposeDeclaration {
  skills?: boolean | string[];
  models?: boolean | string[];
}

/** `publisher.name`, where an npm scope and an `ext-` prefix are packaging, not identity. */
export function extensionIdOf(manifest: Pick<ExtensionManifest, 'publisher' | 'name'>): string {
  const bare = manifest.name.replace(/^@[^/]+\//, '').replace(/^ext-/, '');
  return `${manifest.publisher}.${bare}`;
}

const identifier = '^[a-z0-9][a-z0-9-]*$';

/** JSON schema of the manifest (draft 2020-12 subset understood by ajv). */
export const manifestSchema = {
  $id: 'https://aion.dev/schemas/extension-manifest.json',
  type: 'object',
  required: ['name', 'publisher', 'version', 'engines'],
  properties: {
    name: { type: 'string', pattern: '^(@[a-z0-9][a-z0-9-._~]*/)?[a-z0-9][a-z0-9-._~]*$', maxLength: 214 },
    publisher: { type: 'string', pattern: identifier, maxLength: 64 },
    // Semver: no leading zeros ("01.2.3" is not a version).
    version: { type: 'string', pattern: '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$', maxLength: 256 },
    displayName: { type: 'string', maxLength: 200 },
    description: { type: 'string', maxLength: 4000 },
    main: { type: 'string', minLength: 1 },
    engines: {
      type: 'object',
      required: ['aion'],
      properties: { aion: { type: 'string', minLength: 1 } },
    },
    activationEvents: {
      type: 'array',
      items: { type: 'string', pattern: '^(\\*|onStartup|on[A-Z][A-Za-z]*:.+)$' },
    },
    extensionDependencies: {
      type: 'array',
      items: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*\\.[a-z0-9][a-z0-9-._]*$' },
      uniqueItems: true,
    },
    contributes: {
      type: 'object',
      properties: {
        contributionPoints: {
          type: 'object',
          propertyNames: { pattern: '^[a-z][A-Za-z0-9]*$' },
          additionalProperties: {
            type: 'object',
            required: ['schema'],
            properties: {
              schema: { type: 'object' },
              activationEventPrefix: { type: 'string', pattern: '^on[A-Z][A-Za-z]*$' },
              description: { type: 'string' },
            },
            additionalProperties: false,
          },
        },
        configuration: { type: 'object' },
        routes: {
          type: 'array',
          items: {
            type: 'object',
            required: ['method', 'path'],
            properties: {
              method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] },
              path: { type: 'string', pattern: '^/' },
              scopes: { type: 'array', items: { type: 'string', minLength: 1 } },
              auth: { enum: ['required', 'optional', 'none'] },
              stream: { type: 'boolean' },
              websocket: { type: 'boolean' },
              messages: {
                type: 'object',
                required: ['perSecond', 'burst'],
                properties: { perSecond: { type: 'number', exclusiveMinimum: 0 }, burst: { type: 'integer', minimum: 1 } },
                additionalProperties: false,
              },
              bodyLimit: { type: 'integer', minimum: 0 },
              timeoutMs: { type: 'integer', minimum: 1 },
              description: { type: 'string' },
              requestSchema: { type: 'object' },
              responseSchema: { type: 'object' },
              errorFormat: { enum: ['aion', 'openai'] },
            },
            additionalProperties: false,
          },
        },
        commands: {
          type: 'array',
          items: {
            type: 'object',
            required: ['command'],
            properties: {
              command: { type: 'string', minLength: 1 },
              title: { type: 'string' },
              cli: {
                type: 'object',
                required: ['name'],
                properties: {
                  name: { type: 'string', pattern: '^[a-z][a-z0-9-]*( [a-z][a-z0-9-]*)*$' },
                  description: { type: 'string' },
                  options: {
                    type: 'object',
                    additionalProperties: {
                      type: 'object',
                      required: ['type'],
                      properties: {
                        type: { enum: ['string', 'boolean'] },
                        short: { type: 'string', pattern: '^[A-Za-z]$' },
                        description: { type: 'string' },
                        required: { type: 'boolean' },
                      },
                      additionalProperties: false,
                    },
                  },
                  positionals: { type: 'array', items: { type: 'string' } },
                  stdio: { type: 'boolean' },
                  running: { type: 'boolean' },
                },
                additionalProperties: false,
              },
              access: { enum: ['public', 'privileged'] },
              scopes: { type: 'array', items: { type: 'string', minLength: 1 } },
            },
            additionalProperties: false,
          },
        },
        hooks: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'kind'],
            properties: {
              name: { type: 'string', pattern: '^[a-z][A-Za-z0-9]*(\\.[a-z][A-Za-z0-9]*)+$' },
              kind: { enum: ['series', 'parallel', 'waterfall', 'bail'] },
              description: { type: 'string' },
              tap: { enum: ['public', 'privileged'] },
              call: { enum: ['public', 'owner'] },
            },
            additionalProperties: false,
          },
        },
        secrets: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name'],
            properties: {
              name: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*\\*?$' },
              description: { type: 'string' },
            },
            additionalProperties: false,
          },
        },
      },
    },
    aion: {
      type: 'object',
      properties: {
        host: { enum: ['kernel', 'shared', 'dedicated', 'remote'] },
        bootFailure: { enum: ['skip', 'abort'] },
        permissions: {
          type: 'object',
          properties: {
            network: {
              oneOf: [{ const: 'deny' }, { type: 'array', items: { type: 'string', pattern: '^[A-Za-z0-9.*\\-\\[\\]:]+:(\\d+|\\*)$' } }],
            },
            filesystem: { enum: ['none', 'read', 'write', 'all'] },
            secrets: { type: 'array', items: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*\\*?$' } },
            childProcess: { type: 'boolean' },
            addons: { type: 'boolean' },
          },
          additionalProperties: false,
        },
        resources: {
          type: 'object',
          properties: {
            memoryMb: { type: 'integer', minimum: 16 },
            activationTimeoutMs: { type: 'integer', minimum: 1 },
            requestTimeoutMs: { type: 'integer', minimum: 1 },
          },
          additionalProperties: false,
        },
        api: {
          type: 'object',
          properties: {
            access: { enum: ['public', 'privileged'] },
            methods: { type: 'object', additionalProperties: { enum: ['public', 'privileged'] } },
          },
          additionalProperties: false,
        },
        expose: {
          type: 'object',
          properties: {
            skills: { oneOf: [{ type: 'boolean' }, { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true }] },
            models: { oneOf: [{ type: 'boolean' }, { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true }] },
          },
          additionalProperties: false,
        },
        optionalPoints: { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true },
      },
      additionalProperties: false,
    },
  },
} as const;
