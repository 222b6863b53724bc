import type { NotificationType, RequestType } from 'vscode-jsonrpc';

/**
 * One capability's part of the kernel <-> host contract: the messages a host sends and the kernel
 * answers (`kernel`), and the messages the kernel sends and every host answers (`host`). The kernel
 * half lives beside the capability's registry in `core`, the host half in one `host-runtime` file.
 */
export interface ProtocolSlice {
  readonly kernel: Readonly<Record<string, RequestType<any, any, any> | NotificationType<any>>>;
  readonly host: Readonly<Record<string, RequestType<any, any, any> | NotificationType<any>>>;
}

/**
 * What ties a call to the HTTP request it serves: W3C trace context (`traceparent`, `tracestate`) and the
 * edge's request id. Optional on every message that carries a call; absent when nothing is being traced
 * or served, so a host that ignores it loses nothing but the link.
 */
export interface CallContext {
  traceparent?: string;
  tracestate?: string;
  requestId?: string;
}
