/**
 * Simulated devices for the benchmark, in a process of their own: real WebSockets to the hub, the real
 * hello handshake, answers to pings and to skill calls (the call's args back), and jittered reconnects.
 * Also a raw WebSocket echo server: the baseline between the same two processes.
 *   node dist/bench/devices.js <hub url> <tokens file>
 * stdin: `close` drops every device for good. stdout: JSON lines ({ echoPort }, { online }).
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { WebSocket, WebSocketServer } from 'ws';
import { PROTOCOL_VERSION } from '../src/contract.js';

const [hubUrl, tokensFile] = process.argv.slice(2) as [string, string];
const tokens = JSON.parse(readFileSync(tokensFile, 'utf8')) as Array<{ name: string; token: string }>;
const skill = { id: 'bench.echo', title: 'Echo', description: 'Answers with its input', tags: ['bench'], inputSchema: { type: 'object' } };
let closing = false;
// The benchmark went away: so do the devices.
process.stdout.on('error', () => process.exit(0));
let online = 0;

const echo = new WebSocketServer({ host: '127.0.0.1', port: 0 });
echo.on('connection', (ws) => ws.on('message', (data) => ws.send(data.toString())));
echo.on('listening', () => process.stdout.write(JSON.stringify({ echoPort: (echo.address() as { port: number }).port }) + '\n'));

const sockets = new Set<WebSocket>();

function connect(device: { name: string; token: string }, attempt = 0): void {
  if (closing) return;
  const ws = new WebSocket(new URL('/v1/devices/connect', hubUrl.replace(/^http/, 'ws')), { headers: { authorization: `Bearer ${device.token}` } });
  sockets.add(ws);
  let welcomed = false;
  ws.on('open', () =>
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, aionVersion: '0.1.0', device: device.name, manifests: [], skills: [skill] })),
  );
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString()) as { type?: string; id?: number | string; method?: string; params?: { args?: unknown } };
    if (!welcomed) {
      if (msg.type !== 'welcome') return ws.close();
      welcomed = true;
      online++;
      attempt = 0;
      return;
    }
    if (msg.method === '$devicePing') ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: msg.params }));
    else if (msg.method === '$deviceExecuteSkill') ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { result: msg.params?.args, durationMs: 0 } }));
  });
  ws.on('error', () => undefined);
  ws.on('close', () => {
    sockets.delete(ws);
    if (welcomed) online--;
    if (closing) return;
    // Full jitter, as the real spoke does, so a restarted hub is not hit by every device at once.
    const delay = Math.random() * Math.min(5_000, 200 * 2 ** Math.min(attempt, 10));
    setTimeout(() => connect(device, welcomed ? 0 : attempt + 1), delay);
  });
}

for (const device of tokens) connect(device);
setInterval(() => process.stdout.write(JSON.stringify({ online }) + '\n'), 200).unref();

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'close') return;
  closing = true;
  for (const ws of sockets) ws.close();
  echo.close();
  setTimeout(() => process.exit(0), 1_000);
});
