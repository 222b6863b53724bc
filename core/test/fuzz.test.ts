import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { io as connectSocket } from 'socket.io-client';
import { WebSocket } from 'ws';
import { startTestKernel, type TestKernel } from '../src/index.js';
import { base, fixture, tempDir, writeExtension } from './helpers.js';
import { httpText, rawRequest, type RawResponse } from './rawHttp.js';

/** mulberry32: small, seeded, so a failing run replays with AION_FUZZ_SEED. */
function generator(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (max: number) => Math.floor(next() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const text = (length: number, alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-~!$') =>
    Array.from({ length }, () => alphabet[int(alphabet.length)]).join('');
  return { next, int, pick, text };
}

const SEED = Number(process.env.AION_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CASES = Number(process.env.AION_FUZZ_CASES ?? 300);
const rng = generator(SEED);

type Expectation = { statuses?: number[]; code?: string };
interface FuzzCase {
  kind: string;
  describe: string;
  payload: Buffer;
  expect: Expectation;
}

/** Routes of the built-in extensions that take a body, with a body each accepts, for type mutations. */
const targets: Array<{ method: string; path: string; auth: boolean; body: Record<string, unknown> }> = [
  { method: 'POST', path: '/v1/auth/login', auth: false, body: { username: 'fuzz', password: 'not-the-password' } },
  { method: 'POST', path: '/v1/auth/refresh', auth: false, body: { refresh_token: 'x' } },
  { method: 'POST', path: '/v1/auth/logout', auth: false, body: { refresh_token: 'x' } },
  { method: 'POST', path: '/v1/sessions', auth: true, body: { title: 'fuzzed', metadata: { a: 1 } } },
  { method: 'PATCH', path: '/v1/sessions/{session}', auth: true, body: { title: 'renamed' } },
  { method: 'POST', path: '/v1/sessions/{session}/messages', auth: true, body: { role: 'user', content: 'hi' } },
  { method: 'POST', path: '/v1/sessions/sync', auth: true, body: { cursor: 0, sessions: [], messages: [] } },
  { method: 'POST', path: '/v1/skills/edge.echo/execute', auth: true, body: { args: { text: 'x' } } },
  { method: 'POST', path: '/v1/tasks', auth: true, body: { input: 'hi', privacy: 'local-only' } },
  { method: 'POST', path: '/v1/bulk', auth: true, body: { operations: [{ method: 'POST', path: '/v1/tasks', body: { input: 'x' } }] } },
  { method: 'POST', path: '/v1/chat/completions', auth: true, body: { model: 'aion/auto', messages: [{ role: 'user', content: 'hi' }] } },
  { method: 'POST', path: '/v1/api-keys', auth: true, body: { name: 'k', scopes: ['sessions:read'] } },
  { method: 'POST', path: '/v1/devices', auth: true, body: { name: 'd' } },
  { method: 'POST', path: '/v1/users', auth: true, body: { username: 'fuzzed-user', password: 'pw-0123456789abc' } },
];

const oddValues = (): unknown[] => [
  1e308,
  -0,
  Number.MAX_SAFE_INTEGER + 2,
  '',
  'x'.repeat(rng.int(100_000)),
  '\u0000\ud800',
  [],
  [[[]]],
  {},
  { __proto__: { admin: true } },
  null,
  true,
  rng.text(12),
];

/** JSON text with values JSON.stringify cannot write: huge numbers, long digit runs. */
const hugeNumbers = ['1e999999', '-1e400', '9'.repeat(5_000), '0.' + '1'.repeat(5_000) + 'e-99999', '1E+308308'];

function bodyCase(token: string, session: string): FuzzCase {
  const target = rng.pick(targets);
  const path = target.path.replace('{session}', session);
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (target.auth) headers.Authorization = `Bearer ${token}`;
  const request = (body: string | Buffer, extra: Record<string, string> = {}) => httpText(target.method, path, { ...headers, ...extra }, body);
  const at = `${target.method} ${path}`;
  switch (rng.int(8)) {
    case 0: {
      const depth = rng.pick([65, 100, 1_000, 10_000, 100_000]);
      const [open, close, inner] = rng.pick([
        ['[', ']', ''],
        ['{"a":', '}', '0'],
        ['[{"k":', '}]', 'null'],
      ] as const);
      const deep = open.repeat(depth) + inner + close.repeat(depth);
      const wrapped = rng.next() < 0.5 ? deep : JSON.stringify({ ...target.body, [rng.pick(Object.keys(target.body))]: '@' }).replace('"@"', deep);
      return { kind: 'deep JSON', describe: `${at} nested ${depth}`, payload: request(wrapped), expect: { statuses: [400], code: 'BAD_REQUEST' } };
    }
    case 1: {
      const key = rng.pick(Object.keys(target.body));
      const number = rng.pick(hugeNumbers);
      const text = rng.next() < 0.3 ? number : JSON.stringify({ ...target.body, [key]: '@' }).replace('"@"', number);
      return { kind: 'huge number', describe: `${at} ${key}=${number.slice(0, 20)}`, payload: request(text), expect: {} };
    }
    case 2: {
      const bad = rng.pick([[0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]]);
      const json = Buffer.from(JSON.stringify({ ...target.body, note: '@' }));
      const split = json.indexOf('@');
      const body = Buffer.concat([json.subarray(0, split), Buffer.from(bad), json.subarray(split + 1)]);
      return {
        kind: 'invalid UTF-8',
        describe: `${at} bytes ${bad.map((b) => b.toString(16)).join(' ')}`,
        payload: request(body),
        expect: { statuses: [400], code: 'BAD_REQUEST' },
      };
    }
    case 3: {
      const key = rng.pick(Object.keys(target.body));
      const value = rng.pick(oddValues());
      const whole = rng.next() < 0.3;
      const body = whole ? (JSON.stringify(value) ?? 'null') : JSON.stringify({ ...target.body, [key]: value });
      return { kind: 'wrong type', describe: `${at} ${whole ? 'body' : key} = ${JSON.stringify(value)?.slice(0, 40)}`, payload: request(body), expect: {} };
    }
    case 4: {
      const json = JSON.stringify(target.body);
      const cut = 1 + rng.int(json.length - 1);
      return {
        kind: 'truncated JSON',
        describe: `${at} cut at ${cut}`,
        payload: request(json.slice(0, cut)),
        expect: { statuses: [400], code: 'BAD_REQUEST' },
      };
    }
    case 5: {
      const bytes = Buffer.from(Array.from({ length: 1 + rng.int(512) }, () => rng.int(256)));
      return { kind: 'random bytes', describe: `${at} ${bytes.length} random bytes`, payload: request(bytes), expect: {} };
    }
    case 6: {
      const type = rng.pick([
        'text/plain',
        'application/xml',
        'multipart/form-data; boundary=',
        'application/json; charset=latin1',
        'application/x-www-form-urlencoded',
        ';;;',
        'application/octet-stream',
        '*/*',
      ]);
      return { kind: 'bad content-type', describe: `${at} as ${type}`, payload: request(JSON.stringify(target.body), { 'Content-Type': type }), expect: {} };
    }
    default: {
      const variant = rng.int(6);
      const body = JSON.stringify(target.body);
      const lengths: Array<[string, Expectation]> = [
        ['abc', { statuses: [400], code: 'BAD_REQUEST' }],
        ['-1', { statuses: [400], code: 'BAD_REQUEST' }],
        ['99999999999999999999999', { statuses: [400, 413] }],
        [String(body.length + 1 + rng.int(50)), { statuses: [408], code: 'REQUEST_TIMEOUT' }],
        [`${body.length}, ${body.length + 5}`, { statuses: [400], code: 'BAD_REQUEST' }],
        [String(body.length), {}],
      ];
      const [length, expect] = lengths[variant]!;
      const extra: Record<string, string> = variant === 5 ? { 'Content-Length': length, 'Transfer-Encoding': 'chunked' } : { 'Content-Length': length };
      return {
        kind: 'bad content-length',
        describe: `${at} Content-Length: ${length}${variant === 5 ? ' with chunked' : ''}`,
        payload: request(body, extra),
        expect: variant === 5 ? { statuses: [400], code: 'BAD_REQUEST' } : expect,
      };
    }
  }
}

function headerCase(token: string): FuzzCase {
  const path = rng.pick(['/healthz', '/v1/me', '/v1/sessions', '/v1/capabilities']);
  switch (rng.int(4)) {
    case 0: {
      const size = 17_000 + rng.int(40_000);
      const many = rng.next() < 0.5;
      const headers: Record<string, string> = many
        ? Object.fromEntries(Array.from({ length: Math.ceil(size / 100) }, (_, i) => [`X-Fuzz-${i}`, 'v'.repeat(90)]))
        : { 'X-Fuzz': 'v'.repeat(size) };
      return {
        kind: 'oversized headers',
        describe: `GET ${path} with ${size} bytes of headers${many ? ' in many fields' : ''}`,
        payload: httpText('GET', path, { Authorization: `Bearer ${token}`, ...headers }),
        expect: { statuses: [431], code: 'HEADERS_TOO_LARGE' },
      };
    }
    case 1: {
      const raw = rng.pick(['X-Bad: a\u0000b', 'X-Bad a', ' X-Folded: a', 'X-Bad:\u007fa', 'Host: a\r\nHost: b', 'X-Bad: \u00ff']);
      return {
        kind: 'malformed header',
        describe: `GET ${path} with ${JSON.stringify(raw)}`,
        payload: Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${raw}\r\n\r\n`, 'latin1'),
        expect: {},
      };
    }
    case 2: {
      const target = rng.pick(['http://[::1', '/v1/nowhere', '//', '/socket.io/?EIO=9&transport=websocket', '/%', `/${rng.text(30)}`]);
      const upgrade = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
      return { kind: 'odd upgrade', describe: `upgrade to ${JSON.stringify(target)}`, payload: Buffer.from(upgrade, 'latin1'), expect: {} };
    }
    default: {
      const line = rng.pick([
        `GET ${path} HTTP/9.9`,
        `GET ${path}`,
        `FETCH ${path} HTTP/1.1`,
        `GET ${'/'.repeat(20_000)} HTTP/1.1`,
        `GET http://[::1 HTTP/1.1`,
        `\u0001\u0002 / HTTP/1.1`,
      ]);
      return {
        kind: 'malformed request line',
        describe: JSON.stringify(line.slice(0, 60)),
        payload: Buffer.from(`${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 'latin1'),
        expect: {},
      };
    }
  }
}

function flip(text: string, at: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const replacement = alphabet[(alphabet.indexOf(text[at]!) + 1 + rng.int(alphabet.length - 1)) % alphabet.length];
  return text.slice(0, at) + replacement + text.slice(at + 1);
}

function credentialCase(token: string, apiKey: string): FuzzCase {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${payload}.`;
  const choices: Array<[string, Record<string, string>]> = [
    ['signature bit flipped', { Authorization: `Bearer ${header}.${payload}.${flip(signature, rng.int(signature.length))}` }],
    ['payload bit flipped', { Authorization: `Bearer ${header}.${flip(payload, rng.int(payload.length))}.${signature}` }],
    ['header bit flipped', { Authorization: `Bearer ${flip(header, rng.int(header.length))}.${payload}.${signature}` }],
    ['truncated token', { Authorization: `Bearer ${token.slice(0, rng.int(token.length))}` }],
    ['alg none', { Authorization: `Bearer ${none}` }],
    ['random bearer', { Authorization: `Bearer ${rng.text(1 + rng.int(200))}` }],
    ['empty bearer', { Authorization: 'Bearer ' }],
    ['other scheme', { Authorization: `${rng.pick(['Basic', 'Digest', 'bearer', 'Token'])} ${rng.text(20)}` }],
    ['huge bearer', { Authorization: `Bearer ${rng.text(8_000)}` }],
    ['API key flipped', { 'X-API-Key': flip(apiKey, 5 + rng.int(apiKey.length - 5)) }],
    ['API key truncated', { 'X-API-Key': apiKey.slice(0, rng.int(apiKey.length)) }],
    ['random API key', { 'X-API-Key': `aion_${rng.text(12)}_${rng.text(43)}` }],
    ['API key as bearer, flipped', { Authorization: `Bearer ${flip(apiKey, 5 + rng.int(apiKey.length - 5))}` }],
  ];
  const [name, headers] = rng.pick(choices);
  const target = rng.pick([
    ['GET', '/v1/me', undefined],
    ['POST', '/v1/sessions', '{}'],
    ['GET', '/v1/extensions', undefined],
  ] as const);
  return {
    kind: 'credentials',
    describe: `${target[0]} ${target[1]} with ${name}`,
    payload: httpText(target[0], target[1], { ...headers, ...(target[2] ? { 'Content-Type': 'application/json' } : {}) }, target[2]),
    expect: { statuses: [400, 401] },
  };
}

function check(c: FuzzCase, res: RawResponse): string | undefined {
  const error = res.json?.error;
  if (res.status >= 400) {
    if (!res.json || Object.keys(res.json).join() !== 'error' || typeof error?.code !== 'string' || typeof error?.message !== 'string')
      return `answered ${res.status} without the error shape: ${res.body.slice(0, 200)}`;
  }
  if (res.status === 500 || error?.code === 'INTERNAL') return `answered ${res.status} ${error?.code}: ${error?.message}`;
  if (res.status > 503 || (res.status >= 500 && res.status !== 503)) return `answered ${res.status} ${error?.code}`;
  if (c.expect.statuses && !c.expect.statuses.includes(res.status))
    return `expected ${c.expect.statuses.join(' or ')}, answered ${res.status} ${error?.code ?? ''}: ${error?.message ?? res.body.slice(0, 120)}`;
  if (c.expect.code && error?.code !== c.expect.code) return `expected ${c.expect.code}, answered ${error?.code}`;
  return undefined;
}

describe('the edge of a kernel with the built-in extensions (auth, sessions, skills, router)', function () {
  this.timeout(180_000);
  let kernel: TestKernel;
  let port: number;
  let token: string;
  let apiKey: string;
  let session: string;

  before(async () => {
    console.log(`      fuzz seed ${SEED}, ${CASES} cases (replay with AION_FUZZ_SEED=${SEED})`);
    kernel = await startTestKernel({
      builtins: ['aion.auth', 'aion.sessions', 'aion.skills', 'aion.router'],
      extensions: [fixture('edge-skill')],
      config: {
        server: { bodyProgress: { minBytes: 1, intervalMs: 500 } },
        extensions: { 'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } } },
      },
    });
    port = Number(new URL(kernel.url).port);
    const initial = readFileSync(join(kernel.dataDir, 'storage', 'aion.auth', 'initial-admin.txt'), 'utf8');
    const login = await kernel.request('/v1/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: /username: (.+)/.exec(initial)![1], password: /password: (.+)/.exec(initial)![1] }),
    });
    token = ((await login.json()) as { access_token: string }).access_token;
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    apiKey = ((await (await kernel.request('/v1/api-keys', { method: 'POST', headers: auth, body: '{"name":"fuzz"}' })).json()) as { key: string }).key;
    session = ((await (await kernel.request('/v1/sessions', { method: 'POST', headers: auth, body: '{}' })).json()) as { id: string }).id;
  });
  after(() => kernel?.stop());

  it('refuses deep JSON on login and on a skill execute route with 400, at every depth', async () => {
    const deep = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
    const times: string[] = [];
    for (const depth of [100, 1_000, 5_000, 20_000, 100_000, 400_000]) {
      for (const [path, headers, body] of [
        ['/v1/auth/login', {}, `{"username":"admin","password":${deep(depth)}}`],
        ['/v1/skills/edge.echo/execute', { Authorization: `Bearer ${token}` }, `{"args":{"nested":${deep(depth)}}}`],
      ] as const) {
        const res = await rawRequest(port, httpText('POST', path, { ...headers, 'Content-Type': 'application/json' }, body), { timeoutMs: 15_000 });
        assert.equal(res.status, 400, `${path} at depth ${depth}: ${res.body.slice(0, 200)}`);
        assert.equal(res.json.error.code, 'BAD_REQUEST');
        assert.match(res.json.error.message, /deeper than 64 levels/);
        times.push(`${depth}: ${res.ms} ms`);
      }
    }
    console.log(`      measured (depth: answer time): ${times.join(', ')}`);
    const ok = await rawRequest(
      port,
      httpText(
        'POST',
        '/v1/skills/edge.echo/execute',
        { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        `{"args":{"nested":${deep(60)}}}`,
      ),
    );
    assert.equal(ok.status, 200, 'within the limit the skill runs');
  });

  it('refuses socket.io clients without credentials, and cuts off a client flooding /v1/ws with JSON-RPC calls', async () => {
    const anonymous = connectSocket(kernel.url, { transports: ['websocket'], reconnection: false });
    try {
      const refused = await new Promise<Error & { data?: { code: string } }>((resolve) => anonymous.on('connect_error', resolve));
      assert.equal(refused.data?.code, 'UNAUTHENTICATED');
    } finally {
      anonymous.close();
    }
    const ws = new WebSocket(`${kernel.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const frames: any[] = [];
    ws.on('message', (m) => frames.push(JSON.parse(m.toString())));
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    for (let id = 1; id <= 5_000 && ws.readyState === ws.OPEN; id++)
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'tasks.get', params: { task_id: 'task_none' } }));
    assert.equal(await closed, 1008);
    const refusals = frames.filter((f) => f.error?.code === 'RATE_LIMITED');
    const answered = frames.filter((f) => f.jsonrpc === '2.0');
    console.log(`      measured: /v1/ws flood: ${answered.length} calls answered, ${refusals.length} refused, then closed with 1008`);
    assert.ok(refusals.length >= 1);
    assert.ok(answered.length <= 150, `the default limit (50/s, burst 100) let ${answered.length} through`);
    assert.equal((await kernel.request('/healthz')).status, 200);
  });

  it('answers every mutated body, header and credential with a typed 4xx (or a typed refusal), never 500, never silence', async () => {
    const failures: string[] = [];
    const byKind = new Map<string, Map<number, number>>();
    const started = performance.now();
    for (let i = 0; i < CASES; i++) {
      const roll = rng.next();
      const c = roll < 0.6 ? bodyCase(token, session) : roll < 0.8 ? headerCase(token) : credentialCase(token, apiKey);
      let res: RawResponse;
      try {
        res = await rawRequest(port, c.payload, { timeoutMs: 15_000 });
      } catch (err) {
        failures.push(`#${i} ${c.kind}: ${c.describe}: ${(err as Error).message}`);
        continue;
      }
      const statuses = byKind.get(c.kind) ?? new Map<number, number>();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      byKind.set(c.kind, statuses);
      const problem = check(c, res);
      if (problem) failures.push(`#${i} ${c.kind}: ${c.describe}: ${problem}`);
    }
    console.log(`      ${CASES} cases in ${Math.round(performance.now() - started)} ms`);
    for (const [kind, statuses] of byKind) console.log(`        ${kind}: ${[...statuses].map(([s, n]) => `${n}× ${s}`).join(', ')}`);
    assert.deepEqual(failures, [], `seed ${SEED}`);
    assert.equal((await kernel.request('/healthz')).status, 200, 'still serving');
    const me = await kernel.request('/v1/me', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(me.status, 200, 'and still authenticating');
  });
});

describe('fuzzing manifests loaded by a real kernel', function () {
  this.timeout(60_000);
  const root = tempDir('aion-fuzz-manifests-');
  after(() => rmSync(root, { recursive: true, force: true }));

  /** Each makes a manifest the schema must refuse, and says which pointer the error names (null: not JSON at all). */
  const mutations: Array<[string, (m: Record<string, any>) => Record<string, any> | string, string | null]> = [
    ['version not semver', (m) => ({ ...m, version: rng.text(6, 'abc') }), '/version'],
    ['version a number', (m) => ({ ...m, version: rng.int(100) }), '/version'],
    ['version deeply nested', (m) => JSON.stringify({ ...m, version: '@' }).replace('"@"', '['.repeat(50_000) + ']'.repeat(50_000)), '/version'],
    ['publisher a number', (m) => ({ ...m, publisher: rng.int(1000) }), '/publisher'],
    ['publisher empty', (m) => ({ ...m, publisher: '' }), '/publisher'],
    ['engines a string', (m) => ({ ...m, engines: '^0.1.0' }), '/engines'],
    ['engines without aion', (m) => ({ ...m, engines: { node: '>=20' } }), '/engines'],
    ['no engines', ({ engines: _e, ...m }) => m, '/'],
    ['no publisher', ({ publisher: _p, ...m }) => m, '/'],
    ['activationEvents a string', (m) => ({ ...m, activationEvents: 'onStartup' }), '/activationEvents'],
    ['activation event malformed', (m) => ({ ...m, activationEvents: [rng.text(8, 'xyz ')] }), '/activationEvents/0'],
    ['dependency not an id', (m) => ({ ...m, extensionDependencies: ['NotAnId'] }), '/extensionDependencies/0'],
    [
      'route method unknown',
      (m) => ({ ...m, main: 'e.js', contributes: { routes: [{ method: rng.pick(['FETCH', 'get', 'TRACE', 'CONNECT']), path: '/x' }] } }),
      '/contributes/routes/0/method',
    ],
    [
      'route path relative',
      (m) => ({ ...m, main: 'e.js', contributes: { routes: [{ method: 'GET', path: rng.text(5, 'abc') }] } }),
      '/contributes/routes/0/path',
    ],
    [
      'route auth unknown',
      (m) => ({ ...m, main: 'e.js', contributes: { routes: [{ method: 'GET', path: '/x', auth: 'maybe' }] } }),
      '/contributes/routes/0/auth',
    ],
    ['routes an object', (m) => ({ ...m, main: 'e.js', contributes: { routes: { method: 'GET' } } }), '/contributes/routes'],
    ['host unknown', (m) => ({ ...m, aion: { host: rng.pick(['moon', 'cloud', '', 'KERNEL']) } }), '/aion/host'],
    ['filesystem unknown', (m) => ({ ...m, aion: { permissions: { filesystem: 'everything' } } }), '/aion/permissions/filesystem'],
    ['secret name malformed', (m) => ({ ...m, aion: { permissions: { secrets: ['1-bad'] } } }), '/aion/permissions/secrets/0'],
    ['hook kind unknown', (m) => ({ ...m, main: 'e.js', contributes: { hooks: [{ name: 'fuzz.hook', kind: 'sometimes' }] } }), '/contributes/hooks/0/kind'],
    ['manifest an array', () => [1, 2, 3] as unknown as Record<string, any>, '/'],
    ['manifest a number', () => 42 as unknown as Record<string, any>, '/'],
    ['truncated JSON', (m) => JSON.stringify(m).slice(0, 10 + rng.int(30)), null],
    ['random bytes', () => rng.text(64, '{}[]",:abc\u0000\u00ff'), null],
    ['empty file', () => '', null],
  ];

  it('rejects every mutated manifest with MANIFEST_INVALID naming its file and JSON pointer, and the kernel keeps serving', async () => {
    for (const [i, [name, mutate]] of mutations.entries()) {
      const manifest = mutate(base({ name: `fuzz-${i}` }));
      writeExtension(root, `mutation-${i}`, typeof manifest === 'string' ? manifest : JSON.stringify(manifest), { 'e.js': 'export function activate() {}' });
      void name;
    }
    const kernel = await startTestKernel({ extensions: [root], strict: false });
    try {
      const listed = kernel.extensions() as Array<{ state: string; errors: Array<{ code: string; message: string }> }>;
      const failures: string[] = [];
      for (const [i, [name, , pointer]] of mutations.entries()) {
        const file = `mutation-${i}/package.json`;
        const entry = listed.find((e) => e.errors.some((x) => x.message.includes(file)));
        if (!entry) {
          failures.push(`${name}: not reported`);
          continue;
        }
        const error = entry.errors.find((x) => x.message.includes(file))!;
        if (error.code !== 'MANIFEST_INVALID') failures.push(`${name}: ${error.code}: ${error.message}`);
        if (entry.state !== 'invalid' && entry.state !== 'skipped') failures.push(`${name}: state ${entry.state}`);
        const expected = pointer === null ? /: not valid JSON/ : new RegExp(`${file.replace(/[./]/g, '\\$&')}: ${pointer.replace(/\//g, '\\/')}(\\/|:)`);
        if (!expected.test(error.message)) failures.push(`${name}: the message does not name ${pointer ?? 'the JSON problem'}: ${error.message}`);
      }
      assert.deepEqual(failures, [], `seed ${SEED}`);
      assert.equal((await kernel.request('/healthz')).status, 200);
      assert.equal((await kernel.request('/readyz')).status, 200);
    } finally {
      await kernel.stop();
    }
  });
});
