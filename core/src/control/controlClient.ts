import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { AionError } from '@aion/extension-api';
import { assertPrivate, CONTROL_PROTOCOL_VERSION, ControlErrorCodes, controlSecretPath, controlSocketPath, readMessages } from './controlProtocol.js';

export interface ControlClient {
  server: { version: string; pid: number; url: string };
  capabilities: string[];
  call<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  close(): void;
}

export interface ConnectOptions {
  /** Overrides for tests of the refusals: another protocol version, another secret. */
  protocol?: number;
  secret?: string;
  timeoutMs?: number;
}

/** Whether a server's control socket exists in `dataDir` (it may still be stale). */
export const hasControlSocket = (dataDir: string) => existsSync(controlSocketPath(dataDir));

/**
 * Connects to the server running on `dataDir`: checks that the socket and secret are this user's
 * alone before sending anything, then the protocol version, then authenticates.
 */
export async function connectControl(dataDir: string, options: ConnectOptions = {}): Promise<ControlClient> {
  const socketPath = controlSocketPath(dataDir);
  if (!existsSync(socketPath))
    throw new AionError(ControlErrorCodes.UNAVAILABLE, `no Aion server is running on ${dataDir} (no ${socketPath}): start one with aion serve`);
  assertPrivate(socketPath, 'the control socket');
  const secret = options.secret ?? (assertPrivate(controlSecretPath(dataDir), 'the control secret'), readFileSync(controlSecretPath(dataDir), 'utf8').trim());
  const protocol = options.protocol ?? CONTROL_PROTOCOL_VERSION;
  const socket = createConnection(socketPath);
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 1;
  let closedError: Error | undefined;
  return new Promise<ControlClient>((resolve, reject) => {
    let capabilities: string[] = [];
    let settled = false;
    const fail = (err: Error) => {
      closedError ??= err;
      if (!settled) {
        settled = true;
        reject(err);
      }
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      socket.destroy();
    };
    const timer = setTimeout(
      () => fail(new AionError(ControlErrorCodes.UNAVAILABLE, `the server on ${socketPath} did not answer within ${options.timeoutMs ?? 5_000} ms`)),
      options.timeoutMs ?? 5_000,
    );
    socket.once('error', (err) =>
      fail(
        new AionError(
          ControlErrorCodes.UNAVAILABLE,
          `no Aion server answers on ${socketPath} (${(err as NodeJS.ErrnoException).code ?? err.message}): start one with aion serve`,
        ),
      ),
    );
    socket.once('close', () => fail(closedError ?? new AionError(ControlErrorCodes.UNAVAILABLE, 'the server closed the control connection')));
    readMessages(
      socket,
      (message) => {
        if (message.type === 'hello') {
          capabilities = Array.isArray(message.capabilities) ? (message.capabilities as string[]) : [];
          // Never half-work against a server of another protocol, and never hand it the secret.
          if (message.protocol !== CONTROL_PROTOCOL_VERSION && options.protocol === undefined)
            return fail(
              new AionError(
                ControlErrorCodes.PROTOCOL_MISMATCH,
                `the server speaks control protocol ${JSON.stringify(message.protocol)}, this aion CLI speaks ${CONTROL_PROTOCOL_VERSION}: use the aion CLI that came with the server`,
              ),
            );
          socket.write(JSON.stringify({ type: 'auth', protocol, secret }) + '\n');
          return;
        }
        if (message.type === 'error') return fail(new AionError(String(message.code), String(message.message)));
        if (message.type === 'ready') {
          clearTimeout(timer);
          settled = true;
          return resolve({
            server: message.server as ControlClient['server'],
            capabilities,
            call: <T>(method: string, params?: Record<string, unknown>) =>
              new Promise<T>((res, rej) => {
                if (closedError) return rej(closedError);
                const id = nextId++;
                pending.set(id, { resolve: res as (v: unknown) => void, reject: rej });
                socket.write(JSON.stringify({ id, method, params }) + '\n');
              }),
            close: () => {
              closedError ??= new AionError(ControlErrorCodes.UNAVAILABLE, 'the control connection is closed');
              socket.end();
            },
          });
        }
        const waiting = pending.get(message.id as number);
        if (!waiting) return;
        pending.delete(message.id as number);
        const error = message.error as { code: string; message: string } | undefined;
        if (error) waiting.reject(new AionError(error.code, error.message));
        else waiting.resolve(message.result);
      },
      (reason) => fail(new AionError(ControlErrorCodes.UNAVAILABLE, `the server sent something this CLI cannot read: ${reason}`)),
    );
  });
}
