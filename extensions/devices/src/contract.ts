/**
 * What hub and spoke agree on, in one module both import: device names, skill paths, the protocol
 * version, the handshake frames, the RPC messages and the error codes.
 */
import { DEVICE_CONNECT_PATH, DEVICE_PROTOCOL_VERSION, DeviceErrorCodes, type DeviceCall, type DeviceCaller, type DeviceSkill } from '@aion/client';
import type { DeviceChatCall, DeviceChatEvent, DeviceModel } from '@aion/client';
import type { SyncAnswer, SyncRequest } from '@aion/ext-sessions';

// The device's side of the protocol is @aion/client's (an IDE is a device too): the version, the path
// and the shapes a device sends and receives are defined there once, and the hub uses the same.

/** Bumped on any incompatible change to the messages below; hub and spoke must match exactly. */
export const PROTOCOL_VERSION = DEVICE_PROTOCOL_VERSION;

/** The WebSocket route a spoke connects to. */
export const CONNECT_PATH = DEVICE_CONNECT_PATH;

export { DeviceErrorCodes };

const MAX_NAME_LENGTH = 63;

/**
 * The one spelling of a device name: Unicode NFKC, case folded, accents dropped, runs of anything
 * but letters and digits made one `-`. `"  Grace’s  MacBook Pro "` → `grace-s-macbook-pro`.
 */
export function normalizeDeviceName(input: string): string {
  const folded = input
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .normalize('NFKC')
    .toLowerCase();
  const name = folded
    .replace(/[^\p{L}\p{N}]+/gu, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_NAME_LENGTH)
    .replace(/-+$/g, '');
  return name;
}

/** A device name as stored and routed: normalized, non-empty, no `/`. */
export function isDeviceName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && normalizeDeviceName(name) === name;
}

/** `name`, or `name-2`, `name-3`, … : the first that `taken` does not hold. */
export function uniqueDeviceName(wanted: string, taken: (name: string) => boolean): string {
  if (!taken(wanted)) return wanted;
  for (let n = 2; ; n++) {
    const suffix = `-${n}`;
    const candidate = `${wanted.slice(0, MAX_NAME_LENGTH - suffix.length).replace(/-+$/, '')}${suffix}`;
    if (!taken(candidate)) return candidate;
  }
}

/** `<device>/<skill id>`: how a skill on a device is named in routes, search results and logs. */
export function skillPath(device: string, skill: string): string {
  return `${device}/${skill}`;
}

export function parseSkillPath(path: string): { device?: string; skill: string } {
  const slash = path.indexOf('/');
  return slash < 0 ? { skill: path } : { device: path.slice(0, slash), skill: path.slice(slash + 1) };
}

/** The tool name a device's skill is offered under in chat and MCP: `device.skill`, dots of the id kept. */
export function deviceToolName(device: string, skill: string): string {
  return `${device}.${skill}`;
}

/** A skill as a spoke announces it: enough for the hub to list it and check calls before forwarding them. */
export type ExposedSkill = DeviceSkill;

/** The first frame a spoke sends, before any JSON-RPC. */
export interface HelloFrame {
  type: 'hello';
  protocolVersion: number;
  aionVersion: string;
  /** The name the spoke believes it has; must be its token's. */
  device: string;
  /** The extensions it exposes, by id and version. */
  manifests: Array<{ id: string; version: string }>;
  skills: ExposedSkill[];
  /** The models it offers its owner through the hub (needs `models:expose`); none when absent. */
  models?: ExposedModel[];
}

/** A model a spoke offers: the hub's router sends it its owner's requests as `devices/<device>/<id>`. */
export type ExposedModel = DeviceModel;

/** A model a spoke announced, checked before the hub lists it. */
export function isExposedModel(value: unknown): value is ExposedModel {
  const m = value as ExposedModel;
  return (
    typeof m === 'object' &&
    m !== null &&
    typeof m.id === 'string' &&
    /^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$/.test(m.id) &&
    (m.contextWindow === undefined || (Number.isInteger(m.contextWindow) && m.contextWindow > 0)) &&
    (m.capabilities === undefined ||
      (typeof m.capabilities === 'object' && m.capabilities !== null && Object.values(m.capabilities).every((v) => typeof v === 'number' && v >= 0 && v <= 1)))
  );
}

/** Keeps the models of the hello that are well formed; the rest are dropped, as malformed skills are. */
export function exposedModelsOf(models: unknown): ExposedModel[] {
  return Array.isArray(models) ? models.filter(isExposedModel) : [];
}

/** The provider id under which a hub offers its devices' models to the router. */
export const DEVICES_PROVIDER_ID = 'devices';

/** A model's id in the hub's catalog: `<device>/<the spoke's model id>`. */
export function deviceModelId(device: string, model: string): string {
  return `${device}/${model}`;
}

export function parseDeviceModelId(id: string): { device: string; model: string } | undefined {
  const slash = id.indexOf('/');
  return slash > 0 && slash < id.length - 1 ? { device: id.slice(0, slash), model: id.slice(slash + 1) } : undefined;
}

/** The hub's answer: welcome (then JSON-RPC), or a refusal naming the reason, then close. */
export type HandshakeAnswer =
  | { type: 'welcome'; protocolVersion: number; aionVersion: string; device: string; pingIntervalMs: number; pingTimeoutMs: number }
  | { type: 'refused'; code: string; message: string };

/** The principal a call runs as on the spoke: the hub's caller, within the device's scopes. */
export type ForwardedCaller = DeviceCaller;

/** A skill call the hub forwards, with its correlation id and deadline. */
export type ExecuteSkillParams = DeviceCall;

/** One exchange of sessions sync, as `POST /v1/sessions/sync` has it. */
export type { SyncRequest as SessionsSyncRequest, SyncAnswer as SessionsSyncAnswer } from '@aion/ext-sessions';

/** A method name with its parameter and result types, as `DeviceProtocol` declares them. */
export interface Method<P, R = void> {
  readonly method: string;
  /** Only carries the types. */
  readonly _?: [P, R];
}

const method = <P, R = void>(name: string): Method<P, R> => ({ method: name });

/** Messages of the `remote` host: mostly the hub asks and the spoke answers; sessions sync goes the other way. */
export const DeviceProtocol = {
  ping: method<{ sentAt: number }, { sentAt: number }>('$devicePing'),
  executeSkill: method<ExecuteSkillParams, { result: unknown; durationMs: number }>('$deviceExecuteSkill'),
  /**
   * Spoke → hub: one exchange of `POST /v1/sessions/sync` for the device's user (needs `sessions:sync`):
   * the spoke pushes what changed locally and pulls what changed on the hub since its cursor.
   */
  syncSessions: method<SyncRequest, SyncAnswer>('$deviceSyncSessions'),
  /** Hub → spoke: a chat with one of the spoke's models; its events come back as `chatEvent` notifications first. */
  chat: method<DeviceChatCall, { durationMs: number }>('$deviceChat'),
  /** Spoke → hub: one event of the answer to the `chat` whose `stream` it names. */
  chatEvent: method<{ stream: string; event: DeviceChatEvent }>('$deviceChatEvent'),
  /** Hub → spoke: the answer `stream` may send `credit` more events (the hub has read that many). */
  chatCredit: method<{ stream: string; credit: number }>('$deviceChatCredit'),
  /** The spoke's skill list changed (a pack installed or removed). */
  skillsChanged: method<{ skills: ExposedSkill[] }>('$deviceSkillsChanged'),
};
