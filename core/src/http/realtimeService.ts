import { injectable } from 'inversify';
import type { Server as SocketServer } from 'socket.io';

/** Lets extensions publish to socket.io rooms without holding the server themselves. */
@injectable()
export class RealtimeService {
  private io?: SocketServer;

  attach(io: SocketServer): void {
    this.io = io;
  }

  publish(room: string, event: string, data: unknown): void {
    this.io?.to(room).emit(event, data);
  }
}
