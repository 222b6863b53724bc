import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, probeRedis, REDIS_URL, signInAdmin, type Tokens } from '@aion/ext-auth/testing';
import { forEachDatabase, probePostgres, requireServer } from '@aion/ext-storage/testing';
import { startHubProcess, startSpoke, waitFor, type HubProcess, type SpokeProcess } from './support/helpers.js';

forEachDatabase(
  'devices: two hubs on one PostgreSQL and Redis',
  (db) => {
    let a: TestKernel | undefined;
    let b: HubProcess | undefined;
    let spoke: SpokeProcess | undefined;
    let admin: Tokens;

    before(async function () {
      requireServer(this, 'PostgreSQL', await probePostgres());
      requireServer(this, 'Redis', await probeRedis());
      const devices = {
        pingIntervalMs: 200,
        pingTimeoutMs: 1500,
        cluster: { redisUrl: REDIS_URL, redisPrefix: `aion-test-${randomBytes(4).toString('hex')}`, presenceTtlMs: 1000 },
      };
      const extensions = { 'aion.storage': db.storageConfig(), 'aion.auth': { scryptCost: 1024, rateLimits: { enabled: false } }, 'aion.devices': devices };
      a = await startTestKernel({ builtins: ['aion.storage', 'aion.auth', 'aion.devices'], config: { extensions } });
      b = await startHubProcess({ extensions });
      admin = await signInAdmin(a);
      const added = (await (await call(a, 'POST', '/v1/hub/devices', { token: admin.access_token, body: { name: 'roamer' } })).json()) as { token: string };
      // Hub B first: the spoke lands there, and falls back to A when B is gone.
      spoke = startSpoke(`${b.url},${a.url}`, added.token, { config: { extensions: { 'aion.devices': { pingIntervalMs: 200, pingTimeoutMs: 1500 } } } });
      await waitFor('the spoke on hub B', async () => ((await device(a!)).status === 'online' ? true : undefined), 60_000, 100).catch((err) => {
        throw new Error(`${(err as Error).message}\n--- spoke\n${spoke?.output()}\n--- hub B\n${b?.output()}`);
      });
    });
    after(async () => {
      await spoke?.stop();
      await b?.stop();
      await a?.stop();
    });

    async function device(kernel: { request(path: string, init?: RequestInit): Promise<Response> }): Promise<any> {
      const body = (await (await call(kernel as any, 'GET', '/v1/hub/devices', { token: admin.access_token })).json()) as { devices: any[] };
      return body.devices.find((d) => d.name === 'roamer') ?? {};
    }

    it('routes a call arriving at hub A to the spoke connected to hub B', async () => {
      const onA = await device(a!);
      assert.equal(onA.status, 'online');
      assert.ok(onA.hub, 'hub A sees which hub holds the device');
      const res = await call(a!, 'POST', '/v1/skills/roamer/demo.echo/execute', { token: admin.access_token, body: { args: { text: 'via B' } } });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(((await res.json()) as any).result.echoed, 'via B');
      const skills = (await (await call(a!, 'GET', '/v1/hub/skills?q=echo', { token: admin.access_token })).json()) as any;
      assert.equal(skills.skills[0]?.devices[0]?.path, 'roamer/demo.echo', 'hub A lists the skills of a device on hub B');
    });

    it('after hub B is killed (SIGKILL), the spoke reconnects to hub A and calls succeed again', async () => {
      const holder = (await device(a!)).hub;
      b!.child.kill('SIGKILL');
      await waitFor(
        'the spoke on hub A',
        async () => {
          const d = await device(a!);
          return d.status === 'online' && d.hub !== holder ? true : undefined;
        },
        30_000,
        100,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}\n--- spoke\n${spoke?.output()}`);
      });
      const res = await call(a!, 'POST', '/v1/skills/roamer/demo.echo/execute', { token: admin.access_token, body: { args: { text: 'via A' } } });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(((await res.json()) as any).result.echoed, 'via A');
    });
  },
  { only: ['postgres'] },
);
