import { AsyncResource } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import {
  AionError,
  AsyncQueue,
  CancellationTokenSource,
  type CancellationToken,
  forEachItem,
  ErrorCodes,
  API_VERSION,
  type HttpRequestData,
  type HttpResponseData,
  type Logger,
  type Principal,
} from '@aion/extension-api';
import type { ProviderEvent } from '@aion/provider-kit';
import type { HubCluster, Presence } from './cluster.js';
import type { DevicesConfiguration } from './config.js';
import {
  DeviceErrorCodes,
  DeviceProtocol,
  PROTOCOL_VERSION,
  deviceToolName,
  exposedModelsOf,
  normalizeDeviceName,
  parseSkillPath,
  skillPath,
  type ExposedModel,
  type ExposedSkill,
  type ForwardedCaller,
  type HandshakeAnswer,
  type HelloFrame,
  type SessionsSyncAnswer,
  type SessionsSyncRequest,
} from './contract.js';
import { DeviceLink, LinkHandlers, type LinkViolation } from './deviceLink.js';
import type { DeviceRow, DeviceStore } from './deviceStore.js';
import type { DeviceClaims, DeviceTokens } from './deviceTokens.js';
import { sanitizeDeviceError, statusOfDeviceCode } from './sanitize.js';

export function deviceError(code: string, message: string, headers?: Record<string, string>): AionError {
  return new AionError(code, message, { status: statusOfDeviceCode(code), headers });
}

/** Frame violations a connection may commit before the hub drops it. */
const MAX_VIOLATIONS = 10;
const NOTICE = '$deviceError';
const NO_MODELS: ReadonlyMap<string, ExposedModel> = new Map();

/** One connected device, as this hub holds it. */
export class DeviceConnection {
  readonly skills = new Map<string, ExposedSkill>();
  /** The models it offers its owner, by the spoke's id. */
  readonly models: ReadonlyMap<string, ExposedModel>;
  readonly connectedAt = Date.now();
  lastSeenAt = Date.now();
  inFlight = 0;
  private closed = false;
  /** A liveness ping is on its way. */
  private pinging = false;
  private violations = 0;
  // Made when first needed: most devices never stream a model's answer, and each empty map costs ~200 bytes.
  private chatStreams?: Map<string, ChatStream>;
  private validators?: Map<string, ValidateFunction>;
  readonly endpoint: DeviceLink<DeviceConnection>;

  constructor(
    readonly claims: DeviceClaims,
    readonly hello: HelloFrame,
    readonly address: string,
    /** The hub's frames to the device (the WebSocket route's response stream). */
    private readonly outgoing: AsyncQueue<string>,
    private readonly hub: Pick<DeviceHub, 'disconnected'>,
    maxFrameBytes: number,
    handlers: LinkHandlers<DeviceConnection>,
  ) {
    for (const skill of hello.skills) this.skills.set(skill.id, skill);
    this.models = hello.models?.length ? new Map(hello.models.map((m) => [m.id, m])) : NO_MODELS;
    this.endpoint = new DeviceLink(this, maxFrameBytes, handlers);
  }

  /** A frame for the device (the link's peer). */
  send(frame: string): void {
    this.outgoing.push(frame);
  }

  /** The device sent a frame the link refused: it hears what was wrong, other calls go on, too many and it is dropped. */
  violation(error: LinkViolation): void {
    this.outgoing.push(JSON.stringify({ jsonrpc: '2.0', method: NOTICE, params: { code: error.code, message: error.message } }));
    if (++this.violations >= MAX_VIOLATIONS) this.close(deviceError(error.code, `device ${this.name} sent ${this.violations} bad frames and was disconnected`));
  }

  get name(): string {
    return this.claims.name;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  validator(skill: ExposedSkill, ajv: Ajv2020): ValidateFunction {
    let v = this.validators?.get(skill.id);
    if (!v) (this.validators ??= new Map()).set(skill.id, (v = ajv.compile(skill.inputSchema)));
    return v;
  }

  /** Answers of its models in progress, by stream id: the events the spoke sends go there. */
  get chats(): Map<string, ChatStream> {
    return (this.chatStreams ??= new Map());
  }

  /** The answer in progress that `stream` names, without making the map for a device that streams none. */
  chat(stream: string): ChatStream | undefined {
    return this.chatStreams?.get(stream);
  }

  replaceSkills(skills: ExposedSkill[]): void {
    this.skills.clear();
    this.validators?.clear();
    for (const skill of skills) this.skills.set(skill.id, skill);
  }

  /**
   * One tick of the hub's liveness timer: a device silent for `timeoutMs` is dropped, failing its calls
   * at once; otherwise it is pinged (one ping in flight at a time).
   */
  checkLiveness(timeoutMs: number): void {
    if (Date.now() - this.lastSeenAt > timeoutMs)
      return this.close(deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${this.name} answered no ping for ${timeoutMs} ms and is treated as offline`));
    if (this.pinging) return;
    this.pinging = true;
    this.endpoint.sendRequest(DeviceProtocol.ping, { sentAt: Date.now() }).then(
      () => {
        this.lastSeenAt = Date.now();
        this.pinging = false;
      },
      () => (this.pinging = false),
    );
  }

  close(reason: AionError): void {
    if (this.closed) return;
    this.closed = true;
    this.endpoint.close(reason);
    this.outgoing.end();
    this.hub.disconnected(this);
  }
}

export interface DeviceStatus {
  name: string;
  display_name: string;
  user_id: string;
  status: 'online' | 'offline';
  last_seen_at: number | null;
  skills_count: number;
  protocol_version: number | null;
  aion_version: string | null;
  address: string | null;
  scopes: string[];
  created_at: number;
  /** The hub holding the connection, when several share a Redis. */
  hub?: string;
}

type SkillSummary = Pick<ExposedSkill, 'id' | 'title' | 'description' | 'tags' | 'scope'>;

/** A device's skill offered to a model or an MCP client. */
export interface DeviceTool {
  /** `<device>.<skill id>` */
  name: string;
  /** `<device>/<skill id>` */
  path: string;
  device: string;
  skill: string;
  title: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

export interface DeviceSkillGroup extends SkillSummary {
  devices: Array<{ name: string; path: string; last_seen_at: number }>;
  device_count: number;
}

/**
 * One device model's answer in progress: the events the spoke sends, within the window the hub granted
 * (`credit` at the start, more as its reader takes them). An event past the window is the device
 * ignoring the stream's backpressure: `onOverrun` ends the answer instead of queueing without bound.
 */
export class ChatStream {
  readonly events = new AsyncQueue<ProviderEvent>();
  private left: number;

  constructor(
    credit: number,
    private readonly onOverrun: () => void,
  ) {
    this.left = credit;
  }

  push(event: ProviderEvent): void {
    if (this.left <= 0) return this.onOverrun();
    this.left--;
    this.events.push(event);
  }

  grant(n: number): void {
    this.left += n;
  }
}

/**
 * The hub's side of the `remote` host: accepts spokes on the WebSocket route after checking their
 * token and protocol version, keeps them alive with pings, and forwards skill calls to them.
 */
export class DeviceHub {
  private readonly online = new Map<string, DeviceConnection>();
  private livenessTimer?: NodeJS.Timeout;
  private readonly ajv = new Ajv2020({ allErrors: true, strict: false });
  private cluster?: HubCluster;
  /** Told when a device that offers models connects or leaves, so the router lists them again. */
  onModelsChanged?: () => void;
  /** The hub's sessions sync for a user (`aion.sessions` syncFor), when sessions are installed. */
  syncSessions?: (owner: { tenant_id: string; user_id: string }, body: SessionsSyncRequest) => Promise<SessionsSyncAnswer>;

  /** What every device may send the hub, one set for all connections. */
  private readonly handlers = new LinkHandlers<DeviceConnection>()
    .onRequest(DeviceProtocol.syncSessions, (body, connection) => {
      const { claims } = connection;
      // A device syncs its own user's sessions and nobody else's.
      if (!claims.scopes.includes('sessions:sync'))
        throw new AionError(ErrorCodes.FORBIDDEN, `device ${claims.name} may not sync sessions: its token lacks the sessions:sync scope`);
      if (!this.syncSessions) throw new AionError(ErrorCodes.NOT_IMPLEMENTED, 'this hub has no sessions extension to sync with');
      return this.syncSessions({ tenant_id: claims.tenant_id, user_id: claims.user_id }, body);
    })
    .onNotification(DeviceProtocol.chatEvent, ({ stream, event }, connection) => {
      // Only answers this hub asked this device for: a stream id is never another connection's.
      if (typeof stream === 'string') connection.chat(stream)?.push(event as ProviderEvent);
    })
    .onNotification(DeviceProtocol.skillsChanged, ({ skills }, connection) => {
      if (Array.isArray(skills)) connection.replaceSkills(skills.filter(isExposedSkill));
    });

  constructor(
    private readonly config: DevicesConfiguration,
    private readonly store: DeviceStore,
    private readonly tokens: DeviceTokens,
    private readonly logger: Logger,
  ) {}

  /** A device's models came or went: this hub's router lists them again, and so does every other hub's. */
  private modelsChanged(): void {
    this.onModelsChanged?.();
    this.cluster?.modelsChanged();
  }

  /** Where a device this hub does not hold is online, when another hub of the cluster holds it. */
  async presenceElsewhere(tenant: string, name: string): Promise<Presence | undefined> {
    if (!this.cluster || this.connectionOf(tenant, name)) return undefined;
    const presence = await this.cluster.presence(tenant, name);
    return presence && presence.hub !== this.cluster.hubId ? presence : undefined;
  }

  /** The cluster, for the devices provider's answers held by another hub. */
  get clusterOf(): HubCluster | undefined {
    return this.cluster;
  }

  /** A connection closed: it leaves the hub (and the cluster's presence) unless a reconnect already replaced it. */
  disconnected(connection: DeviceConnection): void {
    const { claims } = connection;
    const key = this.key(claims.tenant_id, claims.name);
    if (this.online.get(key) === connection) {
      this.online.delete(key);
      void this.cluster?.withdraw(claims.tenant_id, claims.name);
    }
    void this.store.touch([claims.sub]).catch(() => undefined);
    if (connection.models.size > 0) this.modelsChanged();
    this.logger.info(`device ${claims.name} disconnected`);
  }

  /** Joins the hubs sharing a Redis: presence there, and calls for devices held here answered for them. */
  joinCluster(cluster: HubCluster): void {
    this.cluster = cluster;
    cluster.serve(async (call) => {
      // Only the holder Redis names answers, never also a hub left with a half-open connection.
      if (!this.connectionOf(call.tenant, call.device) || !(await cluster.holds(call.tenant, call.device))) return undefined;
      const { result, durationMs } = await this.execute(call.device, call.skill, call.args, call.principal, {
        timeoutMs: call.timeoutMs,
        requestId: call.requestId,
        localOnly: true,
      });
      return { result, durationMs };
    });
  }

  private presenceOf(c: DeviceConnection): Presence {
    return {
      hub: this.cluster!.hubId,
      user_id: c.claims.user_id,
      at: c.lastSeenAt,
      protocol_version: c.hello.protocolVersion,
      ...(c.models.size ? { models: [...c.models.values()] } : {}),
      skills: [...c.skills.values()].map((s) => ({
        id: s.id,
        title: s.title,
        description: s.description,
        tags: s.tags,
        ...(s.scope ? { scope: s.scope } : {}),
      })),
    };
  }

  private key(tenant: string, name: string): string {
    return `${tenant}/${name}`;
  }

  connectionOf(tenant: string, name: string): DeviceConnection | undefined {
    const c = this.online.get(this.key(tenant, name));
    return c && !c.isClosed ? c : undefined;
  }

  connections(): DeviceConnection[] {
    return [...this.online.values()].filter((c) => !c.isClosed);
  }

  /** `GET /v1/devices/connect`: the socket's frames in, the hub's frames out. */
  connect(req: HttpRequestData): HttpResponseData {
    if (!req.messages) throw new AionError(ErrorCodes.BAD_REQUEST, 'connect with a WebSocket client');
    const outgoing = new AsyncQueue<string>();
    // The connection keeps its claims, not the upgrade request's headers (a token slice would keep the whole header alive).
    const admitted = this.admit(req.headers.authorization);
    void this.serve(admitted, req.ip, req.messages[Symbol.asyncIterator](), outgoing).catch((err) => {
      this.logger.warn(`device connection failed: ${(err as Error).message}`);
      outgoing.end();
    });
    return { stream: outgoing };
  }

  private refuse(outgoing: AsyncQueue<string>, error: AionError): void {
    const answer: HandshakeAnswer = { type: 'refused', code: error.code, message: error.message };
    outgoing.push(JSON.stringify(answer));
    outgoing.end();
  }

  /** The device's claims from its `Authorization` header: a live token of a device that is not revoked. */
  private async admit(authorization: string | undefined): Promise<DeviceClaims> {
    const bearer = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!bearer) throw deviceError(DeviceErrorCodes.DEVICE_TOKEN_INVALID, 'connect with Authorization: Bearer <device token> (from "aion devices add <name>")');
    const claims = await this.tokens.verify(bearer[1]!);
    const row = await this.store.findById(claims.sub);
    if (!row || row.revoked_at !== null || row.token_id !== claims.jti)
      throw deviceError(
        DeviceErrorCodes.DEVICE_TOKEN_INVALID,
        `the device token of ${claims.name} was revoked or replaced: create a new one with "aion devices add"`,
      );
    return claims;
  }

  private async serve(admitted: Promise<DeviceClaims>, ip: string, incoming: AsyncIterator<string>, outgoing: AsyncQueue<string>): Promise<void> {
    let claims: DeviceClaims;
    try {
      claims = await admitted;
    } catch (err) {
      return this.refuse(outgoing, err as AionError);
    }
    const hello = await this.readHello(incoming);
    if (hello instanceof AionError) return this.refuse(outgoing, hello);
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      return this.refuse(
        outgoing,
        deviceError(
          DeviceErrorCodes.DEVICE_PROTOCOL_MISMATCH,
          `the spoke speaks device protocol ${hello.protocolVersion} (Aion ${hello.aionVersion}); this hub speaks protocol ${PROTOCOL_VERSION} (Aion ${API_VERSION}): run the same Aion version on both`,
        ),
      );
    }
    if (normalizeDeviceName(hello.device) !== claims.name) {
      return this.refuse(
        outgoing,
        deviceError(DeviceErrorCodes.DEVICE_NAME_MISMATCH, `this token belongs to device ${claims.name}, not ${JSON.stringify(hello.device)}`),
      );
    }
    if (!claims.scopes.includes('skills:expose') && hello.skills.length > 0) {
      return this.refuse(outgoing, deviceError(ErrorCodes.FORBIDDEN, `device ${claims.name} may not expose skills: its token lacks the skills:expose scope`));
    }
    if (!claims.scopes.includes('models:expose') && (hello.models?.length ?? 0) > 0) {
      return this.refuse(
        outgoing,
        deviceError(
          ErrorCodes.FORBIDDEN,
          `device ${claims.name} may not offer models: its token lacks the models:expose scope (aion devices add ${claims.name} --scopes skills:expose,models:expose,sessions:sync)`,
        ),
      );
    }

    const connection = new DeviceConnection(claims, hello, ip, outgoing, this, this.config.maxFrameBytes, this.handlers);
    const key = this.key(claims.tenant_id, claims.name);
    // One connection per device: a reconnect replaces a half-open predecessor.
    this.online.get(key)?.close(deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${claims.name} reconnected`));
    this.online.set(key, connection);
    await this.cluster?.announce(claims.tenant_id, claims.name, () => this.presenceOf(connection));
    const welcome: HandshakeAnswer = {
      type: 'welcome',
      protocolVersion: PROTOCOL_VERSION,
      aionVersion: API_VERSION,
      device: claims.name,
      pingIntervalMs: this.config.pingIntervalMs,
      pingTimeoutMs: this.config.pingTimeoutMs,
    };
    outgoing.push(JSON.stringify(welcome));
    this.startLiveness();
    void this.store.seen(claims.sub, { protocol_version: hello.protocolVersion, address: ip, skills_count: hello.skills.length }).catch(() => undefined);
    if (connection.models.size > 0) this.modelsChanged();
    this.logger.info(
      `device ${claims.name} connected with ${hello.skills.length} skills${connection.models.size ? ` and ${connection.models.size} models` : ''}`,
    );
    // From here the device's frames go straight to its link: an idle connection keeps no loop or promise waiting.
    receiveFrames(incoming, connection);
  }

  private async readHello(incoming: AsyncIterator<string>): Promise<HelloFrame | AionError> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.config.handshakeTimeoutMs)));
    try {
      const first = await Promise.race([incoming.next(), timeout]);
      if (first === 'timeout') return deviceError(DeviceErrorCodes.MALFORMED_FRAME, `no hello frame within ${this.config.handshakeTimeoutMs} ms`);
      if (first.done) return deviceError(DeviceErrorCodes.MALFORMED_FRAME, 'the connection closed before the hello frame');
      if (Buffer.byteLength(first.value) > this.config.maxFrameBytes)
        return deviceError(DeviceErrorCodes.FRAME_TOO_LARGE, `the hello frame exceeds the ${this.config.maxFrameBytes}-byte frame limit`);
      let hello: HelloFrame;
      try {
        hello = JSON.parse(first.value) as HelloFrame;
      } catch {
        return deviceError(DeviceErrorCodes.MALFORMED_FRAME, 'the hello frame is not JSON');
      }
      if (
        hello?.type !== 'hello' ||
        typeof hello.protocolVersion !== 'number' ||
        typeof hello.device !== 'string' ||
        typeof hello.aionVersion !== 'string' ||
        !Array.isArray(hello.skills)
      ) {
        return deviceError(
          DeviceErrorCodes.MALFORMED_FRAME,
          'the first frame must be { type: "hello", protocolVersion, aionVersion, device, manifests, skills }',
        );
      }
      hello.skills = hello.skills.filter(isExposedSkill);
      hello.models = exposedModelsOf(hello.models);
      return hello;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs `skill` on device `name` for `principal`: the hub checks ownership, scopes and the input
   * schema, then forwards with a correlation id and a deadline; the device's errors come back sanitized.
   */
  async execute(
    name: string,
    skillId: string,
    args: unknown,
    principal: Principal,
    options: { timeoutMs?: number; requestId?: string; localOnly?: boolean } = {},
  ): Promise<{ result: unknown; durationMs: number; device: string }> {
    const timeoutMs = options.timeoutMs ?? this.config.timeouts.remoteSkillMs;
    const connection = this.connectionOf(principal.tenant_id, name);
    if (!connection) {
      if (this.cluster && !options.localOnly) {
        const presence = await this.cluster.presence(principal.tenant_id, name);
        if (presence && presence.hub !== this.cluster.hubId) {
          if (!this.mayUse(principal, presence.user_id)) throw deviceError(DeviceErrorCodes.DEVICE_NOT_FOUND, `no device ${name}`);
          const answer = await this.cluster.forward({
            tenant: principal.tenant_id,
            device: name,
            skill: skillId,
            args,
            principal,
            timeoutMs,
            requestId: options.requestId,
          });
          return { ...answer, device: name };
        }
      }
      const known = await this.store.findLive(principal.tenant_id, name);
      if (!known || !this.mayUse(principal, known.user_id)) throw deviceError(DeviceErrorCodes.DEVICE_NOT_FOUND, `no device ${name}`);
      throw deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${name} is offline`, { 'Retry-After': String(this.config.retryAfterSeconds) });
    }
    if (!this.mayUse(principal, connection.claims.user_id)) throw deviceError(DeviceErrorCodes.DEVICE_NOT_FOUND, `no device ${name}`);
    const skill = connection.skills.get(skillId);
    if (!skill) throw deviceError(DeviceErrorCodes.DEVICE_NOT_FOUND, `device ${name} exposes no skill ${skillId}`);
    const needed = ['skills:execute', ...(skill.scope ? [skill.scope] : [])];
    const missing = needed.filter((s) => !principal.scopes.includes(s) && !principal.scopes.includes('*'));
    if (missing.length)
      throw new AionError(
        ErrorCodes.FORBIDDEN,
        `running ${skillPath(name, skillId)} requires the scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`,
        { details: { missingScopes: missing } },
      );
    const validate = connection.validator(skill, this.ajv);
    if (!validate(args ?? {})) {
      throw new AionError(
        ErrorCodes.VALIDATION_FAILED,
        `the input of ${skillPath(name, skillId)} does not match its schema: ${this.ajv.errorsText(validate.errors)}`,
        { details: { errors: validate.errors } },
      );
    }
    if (connection.inFlight >= this.config.maxInFlightPerDevice) {
      throw deviceError(DeviceErrorCodes.DEVICE_BUSY, `device ${name} already runs ${connection.inFlight} calls: try again shortly`, {
        'Retry-After': String(this.config.retryAfterSeconds),
      });
    }
    const caller: ForwardedCaller = {
      sub: principal.sub,
      type: principal.type,
      tenant_id: principal.tenant_id,
      owner: String(principal.owner ?? principal.sub),
      // Only what this call needs crosses to the device.
      scopes: needed,
    };
    const correlationId = options.requestId ?? randomUUID();
    const cancel = new CancellationTokenSource();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        cancel.cancel();
        reject(deviceError(DeviceErrorCodes.DEVICE_TIMEOUT, `device ${name} did not answer ${skillPath(name, skillId)} within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    connection.inFlight++;
    try {
      const answer = await Promise.race([
        connection.endpoint.sendRequest(
          DeviceProtocol.executeSkill,
          { skill: skillId, args: args ?? {}, caller, correlationId, deadline: Date.now() + timeoutMs },
          cancel.token,
        ),
        expired,
      ]);
      return { result: answer.result, durationMs: answer.durationMs, device: name };
    } catch (err) {
      const e = err as AionError;
      if (e.code === DeviceErrorCodes.DEVICE_TIMEOUT && e.message.startsWith(`device ${name} did not answer`)) throw e;
      throw sanitizeDeviceError(err, name);
    } finally {
      clearTimeout(timer);
      connection.inFlight--;
    }
  }

  /**
   * Times `count` sequential round trips to device `name`, measured in this hub from the call to the
   * answer: the link's own `$devicePing`, or with `skill`, that skill run for `principal` through every
   * check `execute` makes. What an operator runs to tell a slow device or network from a slow hub.
   */
  async ping(
    name: string,
    principal: Principal,
    options: { count?: number; skill?: string; args?: unknown; token?: CancellationToken } = {},
  ): Promise<{ device: string; target: string; count: number; failures: number; round_trip_ms: Record<'min' | 'p50' | 'p90' | 'p99' | 'max', number> }> {
    const count = options.count ?? 10;
    if (!Number.isInteger(count) || count < 1 || count > 100_000)
      throw new AionError(ErrorCodes.VALIDATION_FAILED, `count must be a whole number from 1 to 100000, not ${JSON.stringify(options.count)}`);
    const connection = this.connectionOf(principal.tenant_id, name);
    if (!connection || !this.mayUse(principal, connection.claims.user_id)) {
      const presence = connection ? undefined : await this.cluster?.presence(principal.tenant_id, name);
      if (presence && presence.hub !== this.cluster?.hubId && this.mayUse(principal, presence.user_id))
        throw deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${name} is connected to hub ${presence.hub}: ping it from there`);
      throw deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${name} is not connected to this hub`);
    }
    const once = options.skill
      ? () => this.execute(name, options.skill!, options.args, principal, { localOnly: true })
      : () => connection.endpoint.sendRequest(DeviceProtocol.ping, { sentAt: Date.now() }, options.token);
    const times: number[] = [];
    let failures = 0;
    let lastError: unknown;
    for (let i = 0; i < count; i++) {
      // The operator gave up (the CLI exited): stop, and report what was measured.
      if (options.token?.isCancellationRequested) break;
      const started = performance.now();
      try {
        await once();
        times.push(performance.now() - started);
      } catch (err) {
        failures++;
        lastError = err;
        if (connection.isClosed) break;
      }
    }
    if (times.length === 0)
      throw lastError instanceof AionError ? lastError : deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${name} answered no ping`);
    times.sort((a, b) => a - b);
    const at = (p: number) => Math.round(times[Math.min(times.length - 1, Math.floor(p * times.length))]! * 1000) / 1000;
    return {
      device: name,
      target: options.skill ? skillPath(name, options.skill) : '$devicePing',
      count: times.length,
      failures,
      round_trip_ms: { min: at(0), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) },
    };
  }

  /** A device serves its own user; admins (`*` or `devices:admin`) may use any device of the tenant. */
  mayUse(principal: Principal, userId: string): boolean {
    return String(principal.owner ?? principal.sub) === userId || principal.scopes.includes('*') || principal.scopes.includes('devices:admin');
  }

  /** Skills of online devices the principal may use, grouped by skill id. */
  async skills(principal: Principal, q?: string): Promise<DeviceSkillGroup[]> {
    const bySkill = new Map<string, DeviceSkillGroup>();
    const needle = q?.toLowerCase();
    const add = (device: string, userId: string, lastSeenAt: number, skills: Iterable<SkillSummary>) => {
      if (!this.mayUse(principal, userId)) return;
      for (const skill of skills) {
        if (needle && !`${skill.id} ${skill.title} ${skill.description} ${(skill.tags ?? []).join(' ')}`.toLowerCase().includes(needle)) continue;
        let entry = bySkill.get(skill.id);
        if (!entry)
          bySkill.set(
            skill.id,
            (entry = {
              id: skill.id,
              title: skill.title,
              description: skill.description,
              tags: skill.tags ?? [],
              ...(skill.scope ? { scope: skill.scope } : {}),
              devices: [],
              device_count: 0,
            }),
          );
        entry.devices.push({ name: device, path: skillPath(device, skill.id), last_seen_at: lastSeenAt });
        entry.device_count++;
      }
    };
    const seen = new Set<string>();
    for (const c of this.connections()) {
      if (c.claims.tenant_id !== principal.tenant_id) continue;
      seen.add(c.name);
      add(c.name, c.claims.user_id, c.lastSeenAt, c.skills.values());
    }
    if (this.cluster) for (const [name, p] of await this.cluster.presences(principal.tenant_id)) if (!seen.has(name)) add(name, p.user_id, p.at, p.skills);
    const out = [...bySkill.values()];
    // Most recently seen device first: the one an unqualified call would pick.
    for (const e of out) e.devices.sort((a, b) => b.last_seen_at - a.last_seen_at);
    return out.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Skills of online devices the principal may use, as tools named `<device>.<skill id>`. Devices on
   * another hub are included with the schema it announced, or `{ type: "object" }` when it did not.
   */
  async tools(principal: Principal): Promise<DeviceTool[]> {
    const out: DeviceTool[] = [];
    const seen = new Set<string>();
    for (const c of this.connections()) {
      if (c.claims.tenant_id !== principal.tenant_id || !this.mayUse(principal, c.claims.user_id)) continue;
      seen.add(c.name);
      for (const skill of c.skills.values())
        out.push({
          name: deviceToolName(c.name, skill.id),
          path: skillPath(c.name, skill.id),
          device: c.name,
          skill: skill.id,
          title: skill.title,
          description: skill.description,
          inputSchema: skill.inputSchema,
        });
    }
    if (this.cluster) {
      for (const [name, p] of await this.cluster.presences(principal.tenant_id)) {
        if (seen.has(name) || !this.mayUse(principal, p.user_id)) continue;
        for (const skill of p.skills)
          out.push({
            name: deviceToolName(name, skill.id),
            path: skillPath(name, skill.id),
            device: name,
            skill: skill.id,
            title: skill.title,
            description: skill.description,
            inputSchema: (skill as { inputSchema?: Record<string, unknown> }).inputSchema ?? { type: 'object' },
          });
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Runs `target` — `<device>/<skill id>`, or a bare skill id, which goes to the most recently seen
   * online device that has it — for `principal`.
   */
  async executeAnywhere(
    target: string,
    args: unknown,
    principal: Principal,
    options: { requestId?: string } = {},
  ): Promise<{ result: unknown; durationMs: number; device: string }> {
    const { device, skill } = parseSkillPath(target);
    if (device) return this.execute(device, skill, args, principal, options);
    const group = (await this.skills(principal)).find((g) => g.id === skill);
    const chosen = group?.devices[0];
    if (!chosen) throw deviceError(DeviceErrorCodes.DEVICE_NOT_FOUND, `no online device exposes a skill ${skill}`);
    return this.execute(chosen.name, skill, args, principal, options);
  }

  /** The devices of the principal (every device of the tenant for admins), with live status. */
  async list(principal: Principal): Promise<DeviceStatus[]> {
    const admin = principal.scopes.includes('*') || principal.scopes.includes('devices:admin');
    const rows = await this.store.list(principal.tenant_id, admin ? undefined : String(principal.owner ?? principal.sub));
    const elsewhere = this.cluster ? await this.cluster.presences(principal.tenant_id) : undefined;
    return rows.map((row) => this.status(row, elsewhere?.get(row.name)));
  }

  status(row: DeviceRow, elsewhere?: Presence): DeviceStatus {
    const live = this.connectionOf(row.tenant_id, row.name);
    if (!live && elsewhere) {
      return {
        name: row.name,
        display_name: row.display_name,
        user_id: row.user_id,
        status: 'online',
        last_seen_at: elsewhere.at,
        skills_count: elsewhere.skills.length,
        protocol_version: elsewhere.protocol_version,
        aion_version: null,
        address: row.address,
        scopes: row.scopes,
        created_at: row.created_at,
        hub: elsewhere.hub,
      };
    }
    return {
      name: row.name,
      display_name: row.display_name,
      user_id: row.user_id,
      status: live ? 'online' : 'offline',
      last_seen_at: live ? live.lastSeenAt : row.last_seen_at,
      skills_count: live ? live.skills.size : row.skills_count,
      protocol_version: live ? live.hello.protocolVersion : row.protocol_version,
      aion_version: live ? live.hello.aionVersion : null,
      address: live ? live.address : row.address,
      scopes: row.scopes,
      created_at: row.created_at,
      ...(live && this.cluster ? { hub: this.cluster.hubId } : {}),
    };
  }

  /** Drops the live connection of a revoked device. */
  disconnect(tenant: string, name: string, why: string): void {
    this.connectionOf(tenant, name)?.close(deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, why));
  }

  closeAll(): void {
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.livenessTimer = undefined;
    for (const c of this.connections()) c.close(new AionError(ErrorCodes.SHUTTING_DOWN, 'the hub is shutting down'));
  }

  /** One timer for every connection (not one per device): each interval, every device is checked and pinged. */
  private startLiveness(): void {
    this.livenessTimer ??= setInterval(this.livenessTick, this.config.pingIntervalMs).unref();
  }

  /** Bound where the hub is made (its extension's activation), not to the request of whichever device connected first. */
  private readonly livenessTick = AsyncResource.bind(() => {
    for (const c of this.online.values()) c.checkLiveness(this.config.pingTimeoutMs);
  });
}

function isExposedSkill(value: unknown): value is ExposedSkill {
  const s = value as ExposedSkill;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s.id === 'string' &&
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s.id) &&
    typeof s.inputSchema === 'object' &&
    s.inputSchema !== null &&
    Array.isArray(s.tags ?? [])
  );
}

/** The device's frames into its connection until the socket ends; module-level, so its closures hold the connection only. */
function receiveFrames(incoming: AsyncIterator<string>, connection: DeviceConnection): void {
  forEachItem(
    { [Symbol.asyncIterator]: () => incoming },
    (frame) => {
      connection.lastSeenAt = Date.now();
      connection.endpoint.receive(frame);
    },
    () => connection.close(deviceError(DeviceErrorCodes.DEVICE_UNAVAILABLE, `device ${connection.name} disconnected`)),
  );
}
