import { randomUUID } from 'node:crypto';
import { AsyncQueue, CancellationTokenSource, type CancellationToken } from '@aion/extension-api';
import {
  isProviderErrorCode,
  type ChatRequest,
  type ModelInfo,
  type ModelOwner,
  type ProviderErrorCode,
  type ProviderErrorEvent,
  type ProviderEvent,
  type ProviderImplementation,
} from '@aion/provider-kit';
import type { DevicesConfiguration } from './config.js';
import type { ForwardedChat } from './cluster.js';
import { DeviceErrorCodes, DeviceProtocol, deviceModelId, isExposedModel, parseDeviceModelId, type ExposedModel, type ForwardedCaller } from './contract.js';
import { ChatStream, type DeviceHub } from './hub.js';
import { sanitizeDeviceError } from './sanitize.js';

const FINISH_REASONS = new Set(['stop', 'length', 'tool_calls', 'content_filter', 'error']);
/** Events of a device model's answer the device may send ahead of what the hub has read (its backpressure). */
export const CHAT_CREDIT = 64;

/**
 * The hub's `devices` provider: the models online devices offer, each owned by its device's user and
 * resident on that device, and chats forwarded to them over the device link, streamed back event by
 * event. The router offers a device's models to their owner only; this checks the owner again.
 */
export class DeviceModels implements Pick<ProviderImplementation, 'chat' | 'listModels'> {
  constructor(
    private readonly hub: DeviceHub,
    private readonly config: DevicesConfiguration,
  ) {}

  /** The models of devices online here and, with several hubs, on the others. */
  async listModels(): Promise<ModelInfo[]> {
    const out: ModelInfo[] = [];
    const listed = new Set<string>();
    const add = (device: string, owner: ModelOwner, m: ExposedModel) => {
      const id = deviceModelId(device, m.id);
      const key = `${owner.tenant_id}/${id}`;
      if (listed.has(key)) return;
      listed.add(key);
      out.push({
        id,
        ...(m.displayName ? { displayName: `${m.displayName} on ${device}` } : {}),
        ...(m.contextWindow ? { contextWindow: m.contextWindow } : {}),
        ...(m.capabilities ? { capabilities: m.capabilities } : {}),
        tools: m.tools === true,
        streaming: m.streaming !== false,
        costPer1kInput: 0,
        costPer1kOutput: 0,
        owner,
        residency: { scope: 'device', device },
      });
    };
    for (const c of this.hub.connections()) for (const m of c.models.values()) add(c.name, { tenant_id: c.claims.tenant_id, user_id: c.claims.user_id }, m);
    const elsewhere = await this.hub.clusterOf?.modelPresences().catch(() => []);
    for (const { tenant, device, presence } of elsewhere ?? [])
      for (const m of presence.models ?? []) if (isExposedModel(m)) add(device, { tenant_id: tenant, user_id: presence.user_id }, m);
    return out;
  }

  /** Answers another hub asked for: the device is connected here, and belongs to the user the answer is for. */
  serveForwarded(call: ForwardedChat, token: CancellationToken): AsyncIterable<ProviderEvent> | undefined {
    const connection = this.hub.connectionOf(call.tenant, call.device);
    if (!connection || connection.claims.user_id !== call.user_id || !connection.models.has(call.model)) return undefined;
    const request = { ...call.request, model: deviceModelId(call.device, call.model), caller: { tenant_id: call.tenant, user_id: call.user_id } };
    return this.chat(request as unknown as ChatRequest, token);
  }

  async *chat(request: ChatRequest, token?: CancellationToken): AsyncGenerator<ProviderEvent> {
    let produced = false;
    const failure = (code: ProviderErrorCode, message: string, retryable = false) => errorEvent(code, message, retryable, produced);
    const target = parseDeviceModelId(String(request?.model ?? ''));
    if (!target) return yield failure('PROVIDER_BAD_REQUEST', `${request?.model} is not a device model (<device>/<model>)`);
    const caller = request.caller;
    const connection = caller ? this.hub.connectionOf(caller.tenant_id, target.device) : undefined;
    // Another user's device answers exactly as an absent one: its name says nothing to the caller.
    if (!connection || connection.claims.user_id !== caller!.user_id || !connection.models.has(target.model)) {
      const presence = !connection && caller ? await this.hub.presenceElsewhere(caller.tenant_id, target.device) : undefined;
      if (presence && presence.user_id === caller!.user_id && presence.models?.some((m) => m.id === target.model))
        return yield* this.forwarded(request, { device: target.device, model: target.model }, caller!, token);
      return yield failure('PROVIDER_UNREACHABLE', `device ${target.device} is offline or offers no model ${target.model}`, true);
    }
    if (connection.inFlight >= this.config.maxInFlightPerDevice)
      return yield failure('PROVIDER_RATE_LIMITED', `device ${target.device} already runs ${connection.inFlight} calls`, true);

    const stream = randomUUID();
    const cancel = new CancellationTokenSource();
    const chat = new ChatStream(CHAT_CREDIT, () => {
      cancel.cancel();
      events.push(failure('PROVIDER_BAD_RESPONSE', `device ${target.device} sent more of the answer than the hub asked for (${CHAT_CREDIT} events ahead)`));
      events.end();
    });
    const events = chat.events;
    const stopListening = token?.onCancellationRequested(() => cancel.cancel());
    // The longest wait for the device without progress, as a vendor's timeout is.
    const idleMs = request.timeoutMs ?? this.config.timeouts.remoteSkillMs;
    let idle: NodeJS.Timeout | undefined;
    const rearm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        cancel.cancel();
        events.push(failure('PROVIDER_TIMEOUT', `device ${target.device} sent nothing for ${idleMs} ms`, true));
        events.end();
      }, idleMs);
    };
    const { model: _model, caller: _caller, ...forwarded } = request;
    const forwardedCaller: ForwardedCaller = { sub: caller!.user_id, type: 'user', tenant_id: caller!.tenant_id, owner: caller!.user_id, scopes: [] };
    let settled = false;
    let finished = false;
    // Runs at the answer's last event, not when the reader lets go of this generator: a router that stops
    // reading after `done` or `error` need not close it, and the device's slot must not wait for that.
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(idle);
      stopListening?.dispose();
      connection.chats.delete(stream);
      connection.inFlight--;
      // The device stops an answer nobody reads any more.
      if (!settled) cancel.cancel();
    };
    connection.chats.set(stream, chat);
    connection.inFlight++;
    rearm();
    connection.endpoint
      .sendRequest(
        DeviceProtocol.chat,
        { model: target.model, request: forwarded, caller: forwardedCaller, correlationId: stream, deadline: Date.now() + idleMs, stream, credit: CHAT_CREDIT },
        cancel.token,
      )
      .then(
        () => {
          settled = true;
          events.end();
        },
        (err) => {
          settled = true;
          events.push(this.failureOf(err, target.device, produced));
          events.end();
        },
      );
    let read = 0;
    try {
      for await (const raw of events) {
        rearm();
        // Half the window read: the device may send that many more.
        if (++read % (CHAT_CREDIT / 2) === 0) {
          chat.grant(CHAT_CREDIT / 2);
          connection.endpoint.sendNotification(DeviceProtocol.chatCredit, { stream, credit: CHAT_CREDIT / 2 });
        }
        const event = this.checked(raw, target.device, produced);
        if (event.type === 'token' || event.type === 'tool_call') produced = true;
        if (event.type === 'done' || event.type === 'error') {
          finish();
          yield event;
          return;
        }
        yield event;
      }
      const cancelled = cancel.token.isCancellationRequested;
      finish();
      if (!cancelled) yield failure('PROVIDER_STREAM_CUT', `device ${target.device} ended the answer before it was complete`, true);
    } finally {
      // The caller stopped reading early (cancel, failover): the device stops too.
      finish();
    }
  }

  /**
   * The answer of a device another hub holds: asked of that hub through the cluster, its events checked
   * here again as they come, bounded by the same wait without progress; cancelling stops it there.
   */
  private async *forwarded(
    request: ChatRequest,
    target: { device: string; model: string },
    caller: ModelOwner,
    token?: CancellationToken,
  ): AsyncGenerator<ProviderEvent> {
    let produced = false;
    const failure = (code: ProviderErrorCode, message: string, retryable = false) => errorEvent(code, message, retryable, produced);
    const idleMs = request.timeoutMs ?? this.config.timeouts.remoteSkillMs;
    const { model: _model, caller: _caller, ...forwarded } = request;
    const events = new AsyncQueue<unknown>();
    const asked = await this.hub.clusterOf!.forwardChat(
      { tenant: caller.tenant_id, device: target.device, model: target.model, request: forwarded, user_id: caller.user_id, timeoutMs: idleMs },
      events,
    );
    if (!asked.taken) return yield failure('PROVIDER_UNREACHABLE', `device ${target.device} is offline or offers no model ${target.model}`, true);
    const stopListening = token?.onCancellationRequested(() => asked.cancel());
    let idle: NodeJS.Timeout | undefined;
    const rearm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        asked.cancel();
        events.push(failure('PROVIDER_TIMEOUT', `device ${target.device} sent nothing through its hub for ${idleMs} ms`, true));
        events.end();
      }, idleMs);
    };
    try {
      rearm();
      for await (const raw of events) {
        rearm();
        const event = this.checked(raw, target.device, produced);
        if (event.type === 'token' || event.type === 'tool_call') produced = true;
        yield event;
        if (event.type === 'done' || event.type === 'error') return;
      }
      if (!token?.isCancellationRequested) yield failure('PROVIDER_STREAM_CUT', `device ${target.device} ended the answer before it was complete`, true);
    } finally {
      clearTimeout(idle);
      stopListening?.dispose();
      // A reader that stops early stops the answer on the other hub too (nothing is sent once it ended).
      asked.cancel();
    }
  }

  /** An event as the device sent it, or the error that it is not one: nothing unchecked reaches the router. */
  private checked(raw: unknown, device: string, produced: boolean): ProviderEvent {
    const e = raw as Record<string, any>;
    const bad = (what: string) => errorEvent('PROVIDER_BAD_RESPONSE', `device ${device} sent ${what}`, false, produced);
    switch (e?.type) {
      case 'token':
        return typeof e.text === 'string' ? { type: 'token', text: e.text } : bad('a token without text');
      case 'tool_call': {
        const c = e.call;
        return typeof c?.id === 'string' && typeof c.name === 'string' && typeof c.arguments === 'string'
          ? { type: 'tool_call', call: { id: c.id, name: c.name, arguments: c.arguments } }
          : bad('a malformed tool call');
      }
      case 'usage':
        return Number.isFinite(e.inputTokens) && Number.isFinite(e.outputTokens)
          ? { type: 'usage', inputTokens: e.inputTokens, outputTokens: e.outputTokens }
          : bad('malformed usage');
      case 'done':
        return FINISH_REASONS.has(e.finishReason) ? { type: 'done', finishReason: e.finishReason } : bad('an unknown finish reason');
      case 'error': {
        const clean = sanitizeDeviceError({ code: e.code, message: e.message }, device);
        const code = isProviderErrorCode(e.code) ? e.code : 'PROVIDER_UNAVAILABLE';
        const event = errorEvent(code, clean.message, e.retryable === true, produced);
        return Number.isFinite(e.retryAfterMs) ? { ...event, retryAfterMs: e.retryAfterMs } : event;
      }
      default:
        return bad('an event of no known type');
    }
  }

  /** The device link failed under the call: offline devices are retryable elsewhere, like an unreachable server. */
  private failureOf(err: unknown, device: string, produced: boolean): ProviderEvent {
    const clean = sanitizeDeviceError(err, device);
    const code: ProviderErrorCode =
      clean.code === DeviceErrorCodes.DEVICE_UNAVAILABLE || clean.code === 'SHUTTING_DOWN'
        ? 'PROVIDER_UNREACHABLE'
        : clean.code === DeviceErrorCodes.DEVICE_TIMEOUT
          ? 'PROVIDER_TIMEOUT'
          : clean.code === 'CANCELLED' || clean.code === 'REQUEST_CANCELLED'
            ? 'CANCELLED'
            : 'PROVIDER_UNAVAILABLE';
    return errorEvent(code, clean.message, code !== 'CANCELLED', produced);
  }
}

/** The one shape of a failed answer: never retryable once some of the answer went out. */
function errorEvent(code: ProviderErrorCode, message: string, retryable: boolean, produced: boolean): ProviderErrorEvent {
  return { type: 'error', code, message, retryable: retryable && !produced, afterFirstToken: produced };
}
