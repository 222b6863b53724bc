import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { dropSchema, newSchemaName, POSTGRES_TEST_URL, probePostgres, requireServer } from '@aion/ext-storage/testing';
import { fixture, newKey, removeDir, repoRoot, signedHostilePack, skillsRoot, startService, tempDir } from './support/helpers.js';

const STORAGE_DIR = join(repoRoot, 'extensions', 'storage');

/** Two kernels on one PostgreSQL: an MCP session opened on A goes on on B, and ends everywhere. */
describe('MCP sessions across two kernels sharing a database', function () {
  this.timeout(120_000);
  const key = newKey();
  let work: string;
  let schema: string | undefined;
  let a: TestKernel;
  let b: TestKernel;

  before(async function () {
    requireServer(this, `PostgreSQL at ${POSTGRES_TEST_URL}`, await probePostgres());
    work = tempDir();
    schema = newSchemaName();
    const skills = { trustedKeys: [key.publicKeyLine], packsDir: join(work, 'skills'), quarantineDir: join(work, 'quarantine'), wasm: { workers: 1 } };
    const setup = await startService({ dataDir: work, config: skills });
    await setup.service.installPack(await signedHostilePack(join(work, 'src-hostile'), key));
    await setup.stop();
    const start = () =>
      startTestKernel({
        extensions: [skillsRoot, STORAGE_DIR, fixture('test-auth')],
        config: { extensions: { 'aion.skills': skills, 'aion.storage': { databaseUrl: POSTGRES_TEST_URL, postgres: { schema } } } },
      });
    a = await start();
    b = await start();
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    if (schema) await dropSchema(schema);
    if (work) removeDir(work);
  });

  let version = '';
  const mcp = (k: TestKernel, session: string | undefined, message: unknown, token = 'runner', method = 'POST') =>
    fetch(`${k.url}/mcp`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        ...(session ? { 'mcp-session-id': session } : {}),
        ...(version ? { 'mcp-protocol-version': version } : {}),
      },
      ...(method === 'POST' ? { body: JSON.stringify(message) } : {}),
    });

  it('takes up on B a session opened on A, for its owner only, and ends it everywhere on DELETE', async () => {
    const init = await mcp(a, undefined, {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'kernels-test', version: '1.0.0' } },
    });
    assert.equal(init.status, 200, await init.clone().text());
    const session = init.headers.get('mcp-session-id')!;
    assert.ok(session, 'A opened a session');
    version = ((await init.json()) as { result: { protocolVersion: string } }).result.protocolVersion;
    assert.equal((await mcp(a, session, { jsonrpc: '2.0', method: 'notifications/initialized' })).status, 202);

    // The same session, through the other kernel.
    const list = await mcp(b, session, { jsonrpc: '2.0', id: 2, method: 'tools/list' });
    assert.equal(list.status, 200, await list.clone().text());
    const tools = ((await list.json()) as { result: { tools: Array<{ name: string }> } }).result.tools;
    assert.ok(
      tools.some((t) => t.name === 'hostile.echo'),
      JSON.stringify(tools.map((t) => t.name)),
    );
    const call = await mcp(b, session, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'hostile.echo', arguments: { text: 'via B' } } });
    const result = ((await call.json()) as { result: { content: Array<{ text: string }>; isError?: boolean } }).result;
    assert.ok(!result.isError, JSON.stringify(result));
    assert.match(result.content[0]!.text, /via B/);

    // Another user cannot borrow the session id on either kernel.
    assert.equal((await mcp(b, session, { jsonrpc: '2.0', id: 4, method: 'tools/list' }, 'other')).status, 404);
    assert.equal((await mcp(a, session, { jsonrpc: '2.0', id: 5, method: 'tools/list' }, 'other')).status, 404);

    // Ended through B: gone on A too.
    const ended = await mcp(b, session, undefined, 'runner', 'DELETE');
    assert.equal(ended.status, 200, await ended.clone().text());
    assert.equal((await mcp(a, session, { jsonrpc: '2.0', id: 6, method: 'tools/list' })).status, 404);
    assert.equal((await mcp(b, session, { jsonrpc: '2.0', id: 7, method: 'tools/list' })).status, 404);
  });

  it('answers an unknown session id with 404 on every kernel', async () => {
    for (const k of [a, b]) assert.equal((await mcp(k, 'no-such-session', { jsonrpc: '2.0', id: 1, method: 'tools/list' })).status, 404);
  });
});
