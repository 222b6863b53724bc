import type { CancellationToken } from 'vscode-jsonrpc';
import type { Disposable } from './lifecycle.js';
import type { Event } from './event.js';
import type { ExtensionManifest } from './manifest.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** Who is calling: set by whatever extension taps `http.authenticate`. */
export interface Principal {
  sub: string;
  type: 'user' | 'device' | 'service' | (string & {});
  scopes: string[];
  tenant_id: string;
  [claim: string]: unknown;
}

export interface HttpRequestData {
  method: string;
  path: string;
  /** The declared route path, e.g. `/v1/sessions/:id`. */
  route: string;
  params: Record<string, string>;
  query: Record<string, string | string[]>;
  headers: Record<string, string>;
  body?: unknown;
  /** The body as received, for content types the kernel does not parse (base64 when binary). */
  rawBody?: string;
  principal?: Principal;
  requestId: string;
  ip: string;
  /** WebSocket routes only: each text frame the client sends; ends when the client closes. */
  messages?: AsyncIterable<string>;
}

export interface ServerSentEvent {
  event?: string;
  data: unknown;
  id?: string;
  retry?: number;
}

export interface HttpResponseData {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
  /** Streaming routes: each element becomes one server-sent event. WebSocket routes: one text frame (objects as JSON). */
  stream?: AsyncIterable<ServerSentEvent> | AsyncIterable<string | object>;
}

export type HttpHandler = (request: HttpRequestData, token: CancellationToken) => HttpResponseData | Promise<HttpResponseData>;

export interface Logger {
  trace(message: string, data?: Record<string, unknown>): void;
  debug(message: string, data?: Record<string, unknown>): void;
  info(message: string, data?: Record<string, unknown>): void;
  warn(message: string, data?: Record<string, unknown>): void;
  error(message: string, data?: Record<string, unknown>): void;
}

export interface Configuration {
  /** The whole section, or one key of it (dotted paths allowed). */
  get<T = unknown>(key?: string): T;
}

export interface SecretStorage {
  /** A declared secret's value, or undefined when it is not set. Undeclared names are refused. */
  get(name: string): Promise<string | undefined>;
}

/** Simple persistent key-value state scoped to one extension (filled in by the storage extension). */
export interface Memento {
  get<T>(key: string, defaultValue?: T): Promise<T | undefined>;
  update(key: string, value: unknown): Promise<void>;
  keys(): Promise<string[]>;
}

export interface ExtensionContext {
  readonly extension: { id: string; version: string; manifest: ExtensionManifest };
  readonly extensionPath: string;
  readonly storagePath: string;
  readonly configuration: Configuration;
  readonly secrets: SecretStorage;
  /** Persistent key-value state of this extension, kept by the `aion.storage` extension. */
  readonly state: Memento;
  readonly logger: Logger;
  /** Disposed, newest first, when the extension deactivates or its host stops. */
  readonly subscriptions: Disposable[];
}

/** What an extension module exports. */
export interface ExtensionModule {
  activate?(context: ExtensionContext): unknown;
  deactivate?(): unknown;
}

/** Turns every method of an API into its async, over-RPC form. */
export type Remote<T> = {
  // A method that already returns a promise keeps its signature, generics included.
  // An optional method stays optional: the remote object has it only when the implementation does.
  [K in keyof T]: NonNullable<T[K]> extends (...args: infer A) => infer R
    ? R extends Promise<unknown>
      ? NonNullable<T[K]>
      : (...args: A) => Promise<Awaited<R>>
    : never;
};

export interface ApiEvents {
  readonly onDidReceive: Event<{ event: string; data: unknown }>;
}
