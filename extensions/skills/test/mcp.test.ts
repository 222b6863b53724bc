import assert from 'node:assert/strict';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, ToolListChangedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { startTestKernel, type TestKernel } from '@aion/core';
import { bearer, cliPath, fixture, newKey, removeDir, signedHostilePack, skillsRoot, startService, tempDir, until } from './support/helpers.js';

/** An MCP server reached over HTTP that wants a bearer token: the remote half of the MCP client tests. */
async function remoteMcpServer(): Promise<{ url: string; close(): Promise<void> }> {
  const http: HttpServer = createServer(async (req, res) => {
    if (req.headers.authorization !== 'Bearer remote-secret') {
      res.writeHead(401).end();
      return;
    }
    const server = new Server({ name: 'remote', version: '1.0.0' }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: [{ name: 'time', description: 'The time, as an ISO string.', inputSchema: { type: 'object' } }],
    }));
    server.setRequestHandler(CallToolRequestSchema, async () => ({ content: [{ type: 'text', text: JSON.stringify({ now: '2026-01-01T00:00:00Z' }) }] }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void transport.close());
    await server.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`, close: () => new Promise((r) => http.close(() => r())) };
}

describe('MCP', function () {
  this.timeout(90_000);
  const key = newKey();
  let work: string;
  let kernel: TestKernel;
  let remote: Awaited<ReturnType<typeof remoteMcpServer>>;
  let skillsConfig: Record<string, unknown>;
  const clients: Client[] = [];

  before(async () => {
    work = tempDir();
    remote = await remoteMcpServer();
    skillsConfig = {
      trustedKeys: [key.publicKeyLine],
      packsDir: join(work, 'skills'),
      quarantineDir: join(work, 'quarantine'),
      wasm: { workers: 1 },
      mcp: { allowedOrigins: ['https://console.example'] },
      mcpServers: {
        fixture: { command: process.execPath, args: [fixture('mcp-server/server.mjs')], tags: ['external'] },
        remote: { url: remote.url, secretHeaders: { Authorization: 'MCP_REMOTE_TOKEN' }, scope: 'remote:use' },
        broken: { command: join(work, 'no-such-command') },
      },
    };
    const setup = await startService({ dataDir: work, config: skillsConfig });
    await setup.service.installPack(await signedHostilePack(join(work, 'src-hostile'), key));
    await setup.stop();
    const secretsFile = join(work, 'secrets.json');
    await writeFile(secretsFile, JSON.stringify({ 'aion.skills': { MCP_REMOTE_TOKEN: 'Bearer remote-secret' } }));
    kernel = await startTestKernel({ extensions: [skillsRoot, fixture('test-auth')], config: { secretsFile, extensions: { 'aion.skills': skillsConfig } } });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await kernel?.stop();
    await remote?.close();
    removeDir(work);
  });

  async function connect(token: string): Promise<Client> {
    const client = new Client({ name: 'skills-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${kernel.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return client;
  }

  describe('server over Streamable HTTP', () => {
    let client: Client;
    before(async () => {
      client = await connect('runner');
    });

    it('lists enabled skills as tools with input and output schemas', async () => {
      const { tools } = await client.listTools();
      const echo = tools.find((t) => t.name === 'hostile.echo');
      assert.ok(echo);
      assert.equal(echo.title, 'Echo text');
      assert.deepEqual(echo.inputSchema.required, ['text']);
      assert.equal(echo.outputSchema?.type, 'object');
      assert.ok(!tools.some((t) => t.name.startsWith('mcp.remote.')), 'a tool behind a scope the caller lacks is not listed');
    });

    it('calls a tool: structuredContent plus the same JSON as text', async () => {
      const result = (await client.callTool({ name: 'hostile.echo', arguments: { text: 'over mcp' } })) as CallToolResult;
      assert.deepEqual(result.structuredContent, { text: 'over mcp' });
      assert.deepEqual(result.content, [{ type: 'text', text: '{"text":"over mcp"}' }]);
      assert.notEqual(result.isError, true);
    });

    it('answers isError with the stable code when the skill fails', async () => {
      const loop = (await client.callTool({ name: 'hostile.loop', arguments: {} })) as CallToolResult;
      assert.equal(loop.isError, true);
      assert.match((loop.content[0] as { text: string }).text, /^TIMEOUT: /);
      const invalid = (await client.callTool({ name: 'hostile.echo', arguments: { text: 3 } })) as CallToolResult;
      assert.equal(invalid.isError, true);
      assert.match((invalid.content[0] as { text: string }).text, /^VALIDATION_FAILED: .*text must be string/);
      await assert.rejects(client.callTool({ name: 'no.such.tool', arguments: {} }), /No skill no\.such\.tool/);
    });

    it('sends notifications/tools/list_changed when packs change', async () => {
      let changed = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
      const other = await startService({ dataDir: work, config: skillsConfig });
      try {
        await other.service.installPack(await signedHostilePack(join(work, 'src-late'), key, { name: 'late' }));
      } finally {
        await other.stop();
      }
      await until(() => changed > 0, 'tools/list_changed');
      // A notification from an earlier change may arrive first: the list holds the new tool once its own one has.
      await until(async () => (await client.listTools()).tools.some((t) => t.name === 'late.echo'), 'late.echo in tools/list');
    });

    it('requires authentication, checks Origin, and binds a session to its principal', async () => {
      await assert.rejects(connect('nobody'), /401|unknown token|UNAUTHENTICATED/i);
      const init = {
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      };
      const headers = { ...bearer('runner'), accept: 'application/json, text/event-stream' };
      const evil = await kernel.request('/mcp', { method: 'POST', headers: { ...headers, origin: 'https://evil.example' }, body: JSON.stringify(init) });
      assert.equal(evil.status, 403);
      const allowed = await kernel.request('/mcp', { method: 'POST', headers: { ...headers, origin: 'https://console.example' }, body: JSON.stringify(init) });
      assert.equal(allowed.status, 200);
      const sessionId = allowed.headers.get('mcp-session-id');
      assert.ok(sessionId);
      const list = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} };
      const stolen = await kernel.request('/mcp', {
        method: 'POST',
        headers: { ...bearer('other'), accept: headers.accept, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify(list),
      });
      assert.equal(stolen.status, 404);
      const ended = await kernel.request('/mcp', {
        method: 'DELETE',
        headers: { ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      });
      assert.equal(ended.status, 200);
      const after = await kernel.request('/mcp', {
        method: 'POST',
        headers: { ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify(list),
      });
      assert.equal(after.status, 404);
    });
  });

  describe('client of external servers', () => {
    const exec = (id: string, args: unknown, token = 'runner') =>
      kernel.request(`/v1/skills/${id}/execute`, { method: 'POST', headers: bearer(token), body: JSON.stringify({ args }) });

    before(async () => {
      await until(
        async () => (await kernel.request('/v1/skills/mcp.fixture.add', { headers: bearer('runner') })).status === 200,
        'the stdio MCP server to connect',
      );
    });

    it('offers the tools of a stdio server as skills mcp.<server>.<tool>, behind the gatekeeper', async () => {
      const add = await exec('mcp.fixture.add', { a: 2, b: 3 });
      assert.deepEqual(((await add.json()) as any).result, { sum: 5 });
      const invalid = await exec('mcp.fixture.add', { a: 'two' });
      assert.equal(invalid.status, 400);
      const shout = await exec('mcp.fixture.shout', { text: 'hi' });
      assert.deepEqual(((await shout.json()) as any).result, { text: 'HI' });
      const fail = await exec('mcp.fixture.fail', {});
      assert.equal(fail.status, 502);
      assert.match(((await fail.json()) as any).error.message, /always fails/);
      const described = (await (await kernel.request('/v1/skills/mcp.fixture.add', { headers: bearer('reader') })).json()) as any;
      assert.deepEqual(described.tags, ['mcp', 'fixture', 'external']);
      assert.equal(described.outputSchema.required[0], 'sum');
    });

    it("follows a server's tools/list_changed", async () => {
      assert.equal((await exec('mcp.fixture.grow', {})).status, 200);
      await until(async () => (await kernel.request('/v1/skills/mcp.fixture.extra_tool', { headers: bearer('reader') })).status === 200, 'the new tool');
      assert.deepEqual(((await (await exec('mcp.fixture.extra_tool', {})).json()) as any).result, { extra: true });
    });

    it('reaches an HTTP server with a secret header, behind its scope', async () => {
      await until(
        async () => (await kernel.request('/v1/skills/mcp.remote.time', { headers: bearer('admin') })).status === 200,
        'the HTTP MCP server to connect',
      );
      assert.equal((await exec('mcp.remote.time', {})).status, 403);
      const packs = (await (await kernel.request('/v1/skill-packs', { headers: bearer('admin') })).json()) as any;
      const states = Object.fromEntries(packs.mcpServers.map((s: { server: string; state: string }) => [s.server, s.state]));
      assert.deepEqual(states, { fixture: 'ready', remote: 'ready', broken: 'failed' });
    });
  });

  describe('server over stdio (aion mcp)', () => {
    it('serves the same tools to an IDE-style client and tells it when packs change', async () => {
      const config = join(work, 'stdio.config.json');
      await writeFile(config, JSON.stringify({ extensions: { 'aion.skills': { ...skillsConfig, mcpServers: {} } } }));
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [cliPath, 'mcp', '--builtins', 'aion.skills', '--data-dir', join(work, 'stdio-data'), '--config', config],
        env: { ...getDefaultEnvironment(), AION_LOG_LEVEL: 'error' },
        stderr: 'pipe',
      });
      let stderr = '';
      transport.stderr?.on('data', (c: Buffer) => (stderr += c));
      const client = new Client({ name: 'ide', version: '1.0.0' });
      clients.push(client);
      await client.connect(transport);
      const { tools } = await client.listTools();
      assert.ok(
        tools.some((t) => t.name === 'hostile.echo'),
        stderr,
      );
      const result = (await client.callTool({ name: 'hostile.echo', arguments: { text: 'stdio' } })) as CallToolResult;
      assert.deepEqual(result.structuredContent, { text: 'stdio' });
      let changed = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed++);
      const other = await startService({ dataDir: work, config: skillsConfig });
      try {
        await other.service.installPack(await signedHostilePack(join(work, 'src-stdio'), key, { name: 'viastdio' }));
      } finally {
        await other.stop();
      }
      await until(() => changed > 0, 'tools/list_changed on stdout');
      assert.ok((await client.listTools()).tools.some((t) => t.name === 'viastdio.echo'));
      await client.close();
    });
  });
});
