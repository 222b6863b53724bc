/**
 * The `remote` host under load, in one run:
 *  1. a remote skill call measured inside the hub (as `aion devices ping --skill` does: hub → device →
 *     back) and through HTTP, against a raw WebSocket echo between the same two processes, p50/p99;
 *  2. N simulated devices on one hub (real sockets, real handshakes, in a second process): hub RSS
 *     per device, routed call p50/p99, RSS after every device left against the idle hub (same
 *     kernel), then a reconnect storm after a hub restart.
 *   node --expose-gc dist/bench/run.js [devices=2000] [settle ms=60000]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { writeHeapSnapshot } from 'node:v8';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, signInAdmin } from '@aion/ext-auth/testing';
import { WebSocket } from 'ws';

const COUNT = Number(process.argv[2] ?? 2000);
const SETTLE_MS = Number(process.argv[3] ?? 60_000);
const CALLS = 2000;
const here = dirname(fileURLToPath(import.meta.url));

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const ms = (n: number) => `${n.toFixed(3)} ms`;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

function rss(): number {
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}

/** The JavaScript heap and the memory outside it (sockets' buffers), after a full collection. */
function heap(): { used: number; total: number; external: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { used: m.heapUsed, total: m.heapTotal, external: m.external };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function until(what: string, probe: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!probe()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

const dataDir = mkdtempSync(join(tmpdir(), 'aion-devices-bench-'));
const port = await freePort();
const config = {
  dataDir,
  // Every simulated device comes from 127.0.0.1: the per-address connection cap (256) would refuse most.
  server: { port, maxConnectionsPerIp: 0, bodyLimit: 4 * 1024 * 1024, realtime: { messagesPerSecond: 100000, burst: 100000, refusalsBeforeDisconnect: 100 } },
  extensions: { 'aion.devices': { maxInFlightPerDevice: 1024 }, 'aion.auth': { rateLimits: { enabled: false } } },
};
const startHub = () => startTestKernel({ builtins: ['aion.storage', 'aion.auth', 'aion.devices'], config, keepDataDir: true });

let hub: TestKernel = await startHub();
// The kernel's data directory is ours (config.dataDir), not the test kit's temporary one.
const signIn = () => signInAdmin({ dataDir, request: (path, init) => hub.request(path, init) });
const admin = await signIn();
const tokens: Array<{ name: string; token: string }> = [];
for (let i = 0; i < COUNT; i++) {
  const added = await hub.executeCommand<{ device: { name: string }; token: string }>('devices.add', { name: `sim ${i}` });
  tokens.push({ name: added.device.name, token: added.token });
}
const tokensFile = join(dataDir, 'tokens.json');
writeFileSync(tokensFile, JSON.stringify(tokens));
const idle = rss();
const idleHeap = heap();
// AION_BENCH_HEAP_SNAPSHOTS=<dir>: heap snapshots idle and with every device connected, to compare.
const snapshots = process.env.AION_BENCH_HEAP_SNAPSHOTS;
if (snapshots) writeHeapSnapshot(join(snapshots, 'idle.heapsnapshot'));

/** A process of simulated devices; `online` follows what it reports. */
function startLoad(): { process: ReturnType<typeof spawn> } {
  const child = spawn(process.execPath, [join(here, 'devices.js'), hub.url, tokensFile], { stdio: ['pipe', 'pipe', 'inherit'] });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as { online?: number; echoPort?: number };
    if (m.online !== undefined) online = m.online;
    if (m.echoPort !== undefined) echoPort = m.echoPort;
  });
  return { process: child };
}
let online = 0;
let echoPort = 0;
let load = startLoad().process;
const connectMs = await until(`${COUNT} devices online`, () => online === COUNT && echoPort > 0, 120_000);
await new Promise((r) => setTimeout(r, Number(process.env.AION_BENCH_LOADED_SETTLE_MS ?? 1_000)));
const loaded = rss();
const loadedHeap = heap();
if (snapshots) writeHeapSnapshot(join(snapshots, 'loaded.heapsnapshot'));

// 1. Raw WebSocket echo between the two processes: the floor of any round trip between them.
const echo = new WebSocket(`ws://127.0.0.1:${echoPort}`);
await new Promise((r) => echo.once('open', r));
const frame = JSON.stringify({ jsonrpc: '2.0', id: 1, method: '$deviceExecuteSkill', params: { skill: 'bench.echo', args: { text: 'hello' } } });
const echoTimes: number[] = [];
for (let i = 0; i < CALLS + 200; i++) {
  const t = performance.now();
  await new Promise<void>((r) => {
    echo.once('message', () => r());
    echo.send(frame);
  });
  if (i >= 200) echoTimes.push(performance.now() - t);
}
echo.close();

// 2. The same call measured inside the hub, as `aion devices ping --skill` does: the hub's scope and schema
//    checks, JSON-RPC over the device's socket and back, between the same two processes as the echo.
type PingReport = { round_trip_ms: { p50: number; p99: number }; failures: number };
const ping = (options: Record<string, unknown>) => hub.executeCommand<PingReport>('devices.ping', { name: tokens[0]!.name, ...options });
await ping({ count: 200, skill: 'bench.echo', args: { text: 'hello' } });
const inHub = await ping({ count: CALLS, skill: 'bench.echo', args: { text: 'hello' } });
const linkPing = await ping({ count: CALLS });

// 3. The same call through the hub: HTTP in, scopes and schema, JSON-RPC over the device's socket, HTTP out.
const routed: number[] = [];
const floor: number[] = [];
let failures = 0;
for (let i = 0; i < CALLS + 200; i++) {
  const device = tokens[i % COUNT]!.name;
  let t = performance.now();
  const res = await call(hub, 'POST', `/v1/skills/${device}/bench.echo/execute`, { token: admin.access_token, body: { args: { text: 'hello' } } });
  if (res.status !== 200 && failures++ === 0) console.log(`first failure: ${res.status} ${await res.clone().text()}`);
  await res.arrayBuffer();
  if (i >= 200) routed.push(performance.now() - t);
  // The HTTP floor: an authenticated request the kernel answers without the device.
  t = performance.now();
  await (await call(hub, 'GET', '/v1/me', { token: admin.access_token })).arrayBuffer();
  if (i >= 200) floor.push(performance.now() - t);
}
echoTimes.sort((a, b) => a - b);
routed.sort((a, b) => a - b);
floor.sort((a, b) => a - b);

// 4. Every device leaves; after the settle time the same hub should be back near idle.
load.stdin!.write('close\n');
await until('every device to leave', () => online === 0, 60_000);
await new Promise((r) => setTimeout(r, SETTLE_MS));
const settled = rss();

// 5. Restart storm: the devices come back, the hub goes away, every device reconnects (jittered backoff) to the new one.
load = startLoad().process;
await until(`${COUNT} devices online again`, () => online === COUNT, 120_000);
await hub.stop();
const stoppedAt = Date.now();
await until('every device to notice', () => online === 0, 60_000);
hub = await startHub();
const stormMs = await until(`${COUNT} devices back`, () => online === COUNT, 120_000);
const afterStormAdmin = await signIn();
const check = await call(hub, 'POST', `/v1/skills/${tokens[0]!.name}/bench.echo/execute`, { token: afterStormAdmin.access_token, body: { args: {} } });
load.stdin!.write('close\n');

console.log(`aion.devices: ${COUNT} simulated devices, ${CALLS} sequential calls (Node ${process.version}, ${process.platform})`);
console.log(`raw WebSocket echo, same two processes   p50 ${ms(pct(echoTimes, 50))}  p99 ${ms(pct(echoTimes, 99))}`);
console.log(
  `remote skill call measured in the hub     p50 ${ms(inHub.round_trip_ms.p50)}  p99 ${ms(inHub.round_trip_ms.p99)}  failures ${inHub.failures}: ${(inHub.round_trip_ms.p50 / pct(echoTimes, 50)).toFixed(2)}× the raw echo at p50 (aion devices ping --skill)`,
);
console.log(
  `  the device link's own ping              p50 ${ms(linkPing.round_trip_ms.p50)}  p99 ${ms(linkPing.round_trip_ms.p99)}: ${(linkPing.round_trip_ms.p50 / pct(echoTimes, 50)).toFixed(2)}× the raw echo (aion devices ping)`,
);
console.log(`remote skill call through the hub (HTTP) p50 ${ms(pct(routed, 50))}  p99 ${ms(pct(routed, 99))}  failures ${failures}`);
console.log(`  HTTP floor (GET /v1/me, same client)    p50 ${ms(pct(floor, 50))}  p99 ${ms(pct(floor, 99))}`);
console.log(
  `  ratio to the raw echo at p50: ${(pct(routed, 50) / pct(echoTimes, 50)).toFixed(2)}×; without the HTTP floor: ${((pct(routed, 50) - pct(floor, 50)) / pct(echoTimes, 50)).toFixed(2)}×`,
);
console.log(`connect ${COUNT} devices: ${connectMs} ms`);
console.log(`hub RSS idle ${mb(idle)}, with ${COUNT} devices ${mb(loaded)}: ${((loaded - idle) / COUNT / 1024).toFixed(1)} KB per device`);
console.log(
  `  of which JS heap ${((loadedHeap.used - idleHeap.used) / COUNT / 1024).toFixed(1)} KB used (${((loadedHeap.total - idleHeap.total) / COUNT / 1024).toFixed(1)} KB committed) and external ${((loadedHeap.external - idleHeap.external) / COUNT / 1024).toFixed(1)} KB per device`,
);
console.log(
  `reconnect storm after a hub restart: all ${COUNT} back ${stormMs} ms after the new hub started (${Date.now() - stoppedAt} ms since the old one stopped); a call afterwards: ${check.status}`,
);
console.log(
  `hub RSS ${SETTLE_MS / 1000} s after every device left: ${mb(settled)} (${(((settled - idle) / idle) * 100).toFixed(1)}% against idle, same kernel)`,
);

await hub.stop();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
