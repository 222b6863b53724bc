/** One socket.io connection for live updates; rooms are subscribed again after a reconnection. */
import { io, type Socket } from 'socket.io-client';
import { AionApiError } from './errors.js';

type Listener = (data: unknown) => void;

export class LiveConnection {
  private socket?: Socket;
  private readonly rooms = new Map<string, Map<string, Set<Listener>>>();

  constructor(
    private readonly baseUrl: string,
    private readonly bearer: () => Promise<string | undefined>,
  ) {}

  private connect(): Socket {
    if (this.socket) return this.socket;
    const url = new URL(this.baseUrl);
    // `auth` as a function: each (re)connection asks for the current access token.
    const socket = io(url.origin, {
      path: `${url.pathname.replace(/\/$/, '')}/socket.io`,
      transports: ['websocket', 'polling'],
      auth: (cb) =>
        void this.bearer().then(
          (token) => cb(token ? { token } : {}),
          () => cb({}),
        ),
    });
    socket.on('connect', () => {
      for (const room of this.rooms.keys()) socket.emit('subscribe', { room }, () => undefined);
    });
    this.socket = socket;
    return socket;
  }

  /** Subscribes to `room`, with a listener per event name; resolves when the hub allowed it. */
  async subscribe(room: string, listeners: Record<string, Listener>): Promise<() => void> {
    const socket = this.connect();
    const reply = await new Promise<{ ok: boolean; error?: { code: string; message: string } }>((resolve, reject) => {
      const fail = (err: Error) =>
        reject(new AionApiError((err as { data?: { code?: string } }).data?.code ?? 'UNAUTHENTICATED', `live updates refused: ${err.message}`));
      socket.once('connect_error', fail);
      socket.emit('subscribe', { room }, (answer: { ok: boolean; error?: { code: string; message: string } }) => {
        socket.off('connect_error', fail);
        resolve(answer);
      });
    });
    if (!reply.ok) throw new AionApiError(reply.error?.code ?? 'FORBIDDEN', reply.error?.message ?? `not allowed to subscribe to ${room}`, { status: 403 });
    const byEvent = this.rooms.get(room) ?? new Map<string, Set<Listener>>();
    this.rooms.set(room, byEvent);
    const added: Array<[string, Listener]> = [];
    for (const [event, listener] of Object.entries(listeners)) {
      if (!byEvent.has(event)) byEvent.set(event, new Set());
      byEvent.get(event)!.add(listener);
      socket.on(event, listener);
      added.push([event, listener]);
    }
    return () => {
      for (const [event, listener] of added) {
        socket.off(event, listener);
        byEvent.get(event)?.delete(listener);
      }
      if ([...byEvent.values()].every((s) => s.size === 0)) {
        this.rooms.delete(room);
        socket.emit('unsubscribe', { room }, () => undefined);
      }
    };
  }

  close(): void {
    this.socket?.disconnect();
    this.socket = undefined;
    this.rooms.clear();
  }
}
