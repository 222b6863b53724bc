import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@aion/core';
import { AUTH_EXTENSION_DIR, call, signInAdmin, createUser } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, PROTO_PATH, type GrpcStatus } from '../src/api.js';

const require = createRequire(import.meta.url);
export const GRPC_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ROUTER_DIR = dirname(require.resolve('@aion/ext-router/package.json'));
export const STORAGE_DIR = dirname(require.resolve('@aion/ext-storage/package.json'));
export const OPENAI_DIR = dirname(require.resolve('@aion/ext-provider-openai/package.json'));

export interface Hub {
  kernel: TestKernel;
  openai: FakeOpenAI;
  grpc: GrpcStatus;
  adminToken: string;
  stop(): Promise<void>;
}

/**
 * A real hub: storage on SQLite, auth, the router with the OpenAI provider pointed at a fake
 * upstream, and aion.grpc on a free port. `[hang]` in a message makes the upstream never answer.
 */
export async function startHub(
  options: { grpc?: Record<string, unknown>; router?: Record<string, unknown>; auth?: Record<string, unknown>; chunkDelayMs?: number } = {},
): Promise<Hub> {
  const openai = await startFakeOpenAI({
    chunkDelayMs: options.chunkDelayMs,
    reply: (request) => {
      const text = JSON.stringify(request.body?.messages ?? []);
      if (text.includes('[hang]')) return { kind: 'hang' };
      if (text.includes('[400]')) return { kind: 'status', status: 400 };
      return { kind: 'answer', text: ['Hello', ' over', ' gRPC'], usage: { prompt_tokens: 7, completion_tokens: 3 } };
    },
  });
  const kernel = await startTestKernel({
    extensions: [STORAGE_DIR, AUTH_EXTENSION_DIR, ROUTER_DIR, OPENAI_DIR, GRPC_DIR],
    config: {
      extensions: {
        'aion.router': { providers: { openai: { enabled: true } }, defaults: { privacy: 'allow-api' }, ...options.router },
        'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 30_000 },
        'aion.grpc': { port: 0, ...options.grpc },
        ...(options.auth ? { 'aion.auth': options.auth } : {}),
      },
    },
  });
  const admin = await signInAdmin(kernel);
  const grpcStatus = await kernel.executeCommand<GrpcStatus>('grpc.status');
  return {
    kernel,
    openai,
    grpc: grpcStatus,
    adminToken: admin.access_token,
    stop: async () => {
      await kernel.stop();
      await openai.close();
    },
  };
}

export { call, createUser };

/** A client generated from the shipped .proto, as any grpc-js user would make one. */
export function tasksClient(port: number, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(), options: grpc.ClientOptions = {}): any {
  const definition = grpc.loadPackageDefinition(loadSync(PROTO_PATH, { ...PROTO_LOADER_OPTIONS }));
  const AionTasks = (definition.aion as any).v1.AionTasks as grpc.ServiceClientConstructor;
  return new AionTasks(`127.0.0.1:${port}`, credentials, options);
}

export function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

export function unary<T = any>(client: any, method: string, request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](request, metadata, options, (err: grpc.ServiceError | null, value: T) => (err ? reject(err) : resolve(value))),
  );
}

/** Every message of a server stream, or its error with the messages seen before it. */
export function collect(stream: grpc.ClientReadableStream<any>): Promise<{ messages: any[]; error?: grpc.ServiceError }> {
  const messages: any[] = [];
  return new Promise((resolve) => {
    stream.on('data', (m) => messages.push(m));
    stream.on('error', (error: grpc.ServiceError) => resolve({ messages, error }));
    stream.on('end', () => resolve({ messages }));
  });
}

export async function until(check: () => boolean | Promise<boolean>, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
