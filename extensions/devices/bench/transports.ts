/**
 * Memory per connected client of the two WebSocket servers a hub could hold its devices with, each in a
 * fresh process of its own and measured the same way as the hub (RSS and JavaScript heap after a full
 * collection, idle against N clients connected): `ws`, which the hub's device route uses, and socket.io
 * (websocket transport only, default options), which carries calls between hubs.
 *   node --expose-gc dist/bench/transports.js [clients=2000]
 * Child roles: `server <ws|socket.io>` and `clients <ws|socket.io> <url> <n>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Server as SocketIoServer } from 'socket.io';
import { io as socketIoClient } from 'socket.io-client';
import { WebSocket, WebSocketServer } from 'ws';

type Kind = 'ws' | 'socket.io';
const self = fileURLToPath(import.meta.url);
const [role, kind, ...rest] = process.argv.slice(2) as [string | undefined, Kind, ...string[]];

function memory(): { rss: number; heap: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
}

const lines = (child: ChildProcess) => createInterface({ input: child.stdout! });
/** The child's next line of output; a child that exits first fails the benchmark loudly instead of leaving it waiting. */
const nextLine = (child: ChildProcess, reader: ReturnType<typeof lines>, what: string) =>
  new Promise<string>((resolve, reject) => {
    const exited = (code: number | null, signal: string | null) => reject(new Error(`the ${what} process exited (${signal ?? code}) before answering`));
    child.once('exit', exited);
    reader.once('line', (line) => {
      child.off('exit', exited);
      resolve(line);
    });
  });

if (role === 'server') {
  // Answers each message (as a device link does), reports memory when asked on stdin.
  const http = createServer();
  let connected = 0;
  if (kind === 'ws') {
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (ws) => {
      connected++;
      ws.on('message', (data) => ws.send(data.toString()));
      ws.on('close', () => connected--);
    });
  } else {
    const io = new SocketIoServer(http, { transports: ['websocket'], serveClient: false });
    io.on('connection', (socket) => {
      connected++;
      socket.on('message', (data: string) => socket.send(data));
      socket.on('disconnect', () => connected--);
    });
  }
  http.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: (http.address() as AddressInfo).port }) + '\n'));
  createInterface({ input: process.stdin }).on('line', () => process.stdout.write(JSON.stringify({ connected, ...memory() }) + '\n'));
} else if (role === 'clients') {
  const [url, n] = rest as [string, string];
  let open = 0;
  const opened = () => ++open === Number(n) && process.stdout.write('online\n');
  const failed = (err: Error) => {
    process.stderr.write(`a ${kind} client could not connect: ${err.message}\n`);
    process.exit(1);
  };
  for (let i = 0; i < Number(n); i++) {
    if (kind === 'ws') new WebSocket(url.replace(/^http/, 'ws')).on('open', opened).on('error', failed);
    else
      socketIoClient(url, { transports: ['websocket'], reconnection: false })
        .on('connect', opened)
        .on('connect_error', failed);
  }
} else {
  const count = Number(process.argv[2] ?? 2000);
  console.log(`WebSocket servers: memory per connected client, ${count} clients, each server in a fresh process (Node ${process.version})`);
  for (const k of ['ws', 'socket.io'] as const) {
    const server = spawn(process.execPath, ['--expose-gc', self, 'server', k], { stdio: ['pipe', 'pipe', 'inherit'] });
    const fromServer = lines(server);
    const { port } = JSON.parse(await nextLine(server, fromServer, `${k} server`)) as { port: number };
    const ask = async () => {
      server.stdin!.write('measure\n');
      return JSON.parse(await nextLine(server, fromServer, `${k} server`)) as { connected: number; rss: number; heap: number };
    };
    const idle = await ask();
    const clients = spawn(process.execPath, [self, 'clients', k, `http://127.0.0.1:${port}`, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await nextLine(clients, lines(clients), `${k} clients`);
    await new Promise((r) => setTimeout(r, 1000));
    const loaded = await ask();
    const kb = (bytes: number) => `${(bytes / count / 1024).toFixed(1)} KB`;
    console.log(
      `  ${k.padEnd(9)} RSS ${kb(loaded.rss - idle.rss)} per client, JS heap ${kb(loaded.heap - idle.heap)} per client (${loaded.connected} connected)`,
    );
    clients.kill();
    server.kill();
  }
}
