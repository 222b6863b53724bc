import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, context, createContextKey, propagation, trace, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { CallContext } from '@aion/extension-api/protocol';

/** The edge's request id, kept in the active OpenTelemetry context beside the span. */
export const REQUEST_ID_KEY = createContextKey('aion.requestId');

let enabled = false;

/**
 * Makes the OpenTelemetry context follow async calls in this process and read/write W3C
 * `traceparent`, unless something registered its own already. Without a tracer provider no span
 * is recorded; the context still carries a remote parent and the request id.
 */
export function enableCallContext(): void {
  if (enabled) return;
  enabled = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

/** The call context to send with a call made now, or undefined when there is nothing to link. */
export function currentCallContext(active: Context = context.active()): CallContext | undefined {
  if (active === ROOT_CONTEXT) return undefined;
  const carrier: CallContext = {};
  propagation.inject(active, carrier);
  const requestId = active.getValue(REQUEST_ID_KEY);
  if (typeof requestId === 'string') carrier.requestId = requestId;
  return carrier.traceparent !== undefined || carrier.requestId !== undefined ? carrier : undefined;
}

/** The context a received call context describes: its remote span as parent, its request id. */
export function contextFrom(call: CallContext | undefined, base: Context = ROOT_CONTEXT): Context {
  if (!call) return base;
  let ctx = call.traceparent ? propagation.extract(base, { traceparent: call.traceparent, tracestate: call.tracestate }) : base;
  if (typeof call.requestId === 'string') ctx = ctx.setValue(REQUEST_ID_KEY, call.requestId);
  return ctx;
}

/** Runs `fn` inside the context a received call carries; without one, as is. */
export function runInCallContext<T>(call: CallContext | undefined, fn: () => T): T {
  if (!call) return fn();
  return context.with(contextFrom(call), fn);
}

/**
 * Runs a call into an extension host (`host`, by protocol `method`): inside a sampled trace, as a client
 * span of its own named `name` (a function: named only when recorded), with `fn` run in that span's context so the call context it sends
 * names the span; otherwise as is. Used by the kernel for every call into a host and by the kernel
 * host for the calls it makes without a message, so traces look the same whichever way a call travels.
 * Errors reject the answer; the span records their code.
 */
export function inClientSpan<R>(name: string | (() => string), method: string, host: string, fn: () => R | Promise<R>): Promise<R> {
  const active = context.active();
  const parent = active === ROOT_CONTEXT ? undefined : trace.getSpanContext(active);
  if (!parent || (parent.traceFlags & TraceFlags.SAMPLED) === 0) {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }
  const span = trace
    .getTracer('aion.kernel')
    .startSpan(
      typeof name === 'string' ? name : name(),
      { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'aion', 'rpc.method': method, 'aion.host': host } },
      active,
    );
  const answer = (async () => context.with(trace.setSpan(active, span), fn))();
  answer.then(
    () => span.end(),
    (err) => {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
      span.setAttribute('aion.error.code', (err as { code?: string })?.code ?? 'INTERNAL');
      span.end();
    },
  );
  return answer;
}
