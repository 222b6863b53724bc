import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI, type RecordedRequest } from '@aion/ext-provider-openai/testing';
import { join } from 'node:path';
import { devicesRoot, spokeSkills, startSpoke, waitFor, type SpokeProcess } from './support/helpers.js';

const spokeOnly = join(devicesRoot, 'test/fixtures/spoke-only');
const intruder = join(devicesRoot, 'test/fixtures/intruder');
const spokePrivate = join(devicesRoot, 'test/fixtures/spoke-private');

const toolResults = (r: RecordedRequest) => ((r.body?.messages ?? []) as Array<{ role: string; content: string }>).filter((m) => m.role === 'tool');

describe("devices: a device's skills in the hub's skills, chat and MCP", function () {
  this.timeout(120_000);
  let hub: TestKernel;
  let openai: FakeOpenAI;
  let admin: Tokens;
  let spoke: SpokeProcess;
  const json = async (res: Response) => res.json() as Promise<any>;
  const as = (method: string, path: string, body?: unknown) => call(hub, method, path, { token: admin.access_token, body });

  before(async () => {
    // The model calls the device's echo tool once, then answers with what the tool said.
    openai = await startFakeOpenAI({
      reply: (r) => {
        const results = toolResults(r);
        if (results.length === 0)
          return { kind: 'answer', toolCalls: [{ id: 'call_1', name: 'lab-laptop__demo__echo', arguments: JSON.stringify({ text: 'from the model' }) }] };
        return { kind: 'answer', text: `the device said ${results[0]!.content}` };
      },
    });
    hub = await startTestKernel({
      builtins: ['aion.storage', 'aion.auth', 'aion.skills', 'aion.devices', 'aion.router', 'aion.provider-openai'],
      extensions: [spokeSkills, intruder],
      config: {
        extensions: {
          'aion.router': { providers: { openai: { enabled: true } }, defaults: { privacy: 'allow-api' } },
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 10_000 },
          'aion.devices': { pingIntervalMs: 200, pingTimeoutMs: 1500 },
        },
      },
    });
    admin = await signInAdmin(hub);
    const { token } = await json(await as('POST', '/v1/hub/devices', { name: 'Lab Laptop' }));
    spoke = startSpoke(hub.url, token, {
      extensionDirs: [spokeSkills, spokeOnly, spokePrivate],
      config: { extensions: { 'aion.devices': { pingIntervalMs: 200, pingTimeoutMs: 1500 } } },
    });
    await waitFor(
      'the spoke to come online',
      async () => ((await json(await as('GET', '/v1/hub/devices'))).devices as any[]).find((d) => d.status === 'online'),
      60_000,
      100,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${spoke.output()}`);
    });
  });
  after(async () => {
    await spoke?.stop();
    await hub?.stop();
    await openai?.close();
  });

  it('lists a skill the hub and the device both have once, with the hub then the device in devices', async () => {
    const { skills } = await json(await as('GET', '/v1/skills?q=echo'));
    const echo = skills.find((s: any) => s.id === 'demo.echo');
    assert.equal(echo.device_count, 2);
    assert.deepEqual(
      echo.devices.map((d: any) => [d.name, d.local]),
      [
        ['hub', true],
        ['lab-laptop', false],
      ],
    );
    assert.equal(echo.devices[1].path, 'lab-laptop/demo.echo');
    assert.equal(skills.filter((s: any) => s.id === 'demo.echo').length, 1, 'grouped by skill');
  });

  it('lists a skill only a device has, with the device as where it runs', async () => {
    const { skills } = await json(await as('GET', '/v1/skills?q=battery'));
    assert.deepEqual(
      skills.map((s: any) => [s.id, s.runtime, s.device_count, s.devices.map((d: any) => d.path)]),
      [['laptop.battery', 'device', 1, ['lab-laptop/laptop.battery']]],
    );
  });

  it('offers the hub only skills of extensions whose manifest says aion.expose', async () => {
    const { skills } = await json(await as('GET', '/v1/skills?q=diary'));
    assert.deepEqual(skills, [], 'the spoke runs laptop.diary but its extension exposes nothing');
    const res = await as('POST', '/v1/skills/lab-laptop/laptop.diary/execute', { args: {} });
    assert.equal(res.status, 404);
    assert.equal((await json(res)).error.code, 'DEVICE_NOT_FOUND');
  });

  it('runs an unqualified id on the hub when the hub has it, and a device path on the device', async () => {
    const here = await json(await as('POST', '/v1/skills/demo.echo/execute', { args: { text: 'x' } }));
    assert.equal(here.device, undefined, 'the hub ran it');
    const there = await json(await as('POST', '/v1/skills/lab-laptop/demo.echo/execute', { args: { text: 'y' } }));
    assert.equal(there.device, 'lab-laptop');
    assert.notEqual(there.result.pid, here.result.pid, 'another process ran it');
  });

  it('sends an id only a device has to the most recently seen online device that has it', async () => {
    const res = await as('POST', '/v1/skills/laptop.battery/execute', { args: {} });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.deepEqual([body.device, body.result.percent], ['lab-laptop', 87]);
    const missing = await as('POST', '/v1/skills/demo.nowhere/execute', { args: {} });
    assert.equal(missing.status, 404);
    assert.equal((await json(missing)).error.code, 'SKILL_NOT_FOUND', 'an id nobody has is still not found');
  });

  it("offers the device's skills as tools in chat, named device__skill, and runs the model's call on the device", async () => {
    const res = await as('POST', '/v1/tasks', { messages: [{ role: 'user', content: 'echo something' }], skills: ['lab-laptop.demo.echo'], wait: true });
    const body = await json(res);
    assert.equal(res.status, 200, JSON.stringify(body));
    const offered = openai.requests[0]!.body.tools.map((t: any) => t.function.name);
    assert.deepEqual(offered, ['lab-laptop__demo__echo']);
    assert.match(body.result.text, /the device said .*from the model/);
    const echoed = JSON.parse(toolResults(openai.requests.at(-1)!)[0]!.content);
    assert.equal(echoed.echoed, 'from the model');
  });

  it('lists device skills as MCP tools named device.skill and calls them', async () => {
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${hub.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${admin.access_token}` } } }),
    );
    try {
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      assert.ok(names.includes('demo.echo'), 'the hub’s own');
      assert.ok(names.includes('lab-laptop.demo.echo'), 'the device’s');
      const answer = await client.callTool({ name: 'lab-laptop.demo.echo', arguments: { text: 'over mcp' } });
      assert.equal((answer.structuredContent as { echoed: string }).echoed, 'over mcp');
    } finally {
      await client.close();
    }
  });

  it('refuses an extension that calls the devices API to act for a user it made up', async () => {
    for (const attack of ['run', 'list']) {
      const answer = await json(await call(hub, 'POST', '/v1/intruder/attack', { body: { attack } }));
      assert.equal(answer.ok, false, `${attack}: ${JSON.stringify(answer)}`);
      assert.equal(answer.code, 'FORBIDDEN');
      assert.match(answer.message, /evil\.intruder may not/);
    }
    // aion.auth's device hooks admit their owner only: the made-up principal never reaches aion.devices.
    for (const attack of ['hook-list', 'hook-revoke']) {
      const answer = await json(await call(hub, 'POST', '/v1/intruder/attack', { body: { attack } }));
      assert.equal(answer.ok, false, `${attack}: ${JSON.stringify(answer)}`);
      assert.equal(answer.code, 'FORBIDDEN');
      assert.match(answer.message, /only aion\.auth calls the hook auth\.devices\.(list|revoke), not evil\.intruder/);
    }
    const devices = (await json(await call(hub, 'GET', '/v1/hub/devices', { token: admin.access_token }))).devices as any[];
    assert.equal(devices.find((d) => d.name === 'lab-laptop')?.status, 'online', 'the device was not revoked');
  });
});
