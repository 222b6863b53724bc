import assert from 'node:assert/strict';
import { PROTOCOL_VERSION } from '../src/contract.js';
import { spawn } from 'node:child_process';
import { aion, cliPath, rawDevice, startHubProcess, waitFor, type HubProcess } from './support/helpers.js';

describe('devices: aion devices ping, asked of the running hub', function () {
  this.timeout(120_000);
  let hub: HubProcess;
  let device: Awaited<ReturnType<typeof rawDevice>>;
  const calls: any[] = [];
  let pings = 0;
  const cli = (args: string[]) => aion(['devices', ...args, '--data-dir', hub.dataDir, '--builtins', 'aion.storage,aion.devices']);

  before(async () => {
    hub = await startHubProcess({});
    const added = await cli(['add', 'Bench Box']);
    assert.equal(added.code, 0, added.stderr);
    device = await rawDevice(hub.url, JSON.parse(added.stdout).token);
    const skill = { id: 'text.echo', title: 'Echo', description: 'Answers with its input', inputSchema: { type: 'object', required: ['text'] } };
    device.ws.send(
      JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, aionVersion: '0.1.0', device: 'bench-box', manifests: [], skills: [skill] }),
    );
    assert.equal(JSON.parse(await device.next()).type, 'welcome');
    // A device that answers the link's pings and runs its one skill, recording what the hub sent.
    void (async () => {
      for (;;) {
        const msg = JSON.parse(await device.next());
        if (msg.method === '$devicePing') {
          pings++;
          device.ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: msg.params }));
        }
        if (msg.method === '$deviceExecuteSkill') {
          calls.push(msg.params);
          device.ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: { result: msg.params.args, durationMs: 0 } }));
        }
      }
    })();
  });
  after(async () => {
    device?.ws.close();
    await hub?.stop();
  });

  it('times round trips over the device’s link, measured in the hub', async () => {
    const pinged = await cli(['ping', 'Bench Box', '--count', '25']);
    assert.equal(pinged.code, 0, pinged.stderr);
    const report = JSON.parse(pinged.stdout);
    assert.equal(report.device, 'bench-box');
    assert.equal(report.target, '$devicePing');
    assert.equal(report.count, 25);
    assert.equal(report.failures, 0);
    const t = report.round_trip_ms;
    assert.ok(t.min > 0 && t.min <= t.p50 && t.p50 <= t.p90 && t.p90 <= t.p99 && t.p99 <= t.max, JSON.stringify(t));
  });

  it('runs a skill of the device through the hub’s checks with --skill', async () => {
    const pinged = await cli(['ping', 'bench-box', '--count', '3', '--skill', 'text.echo', '--args', '{"text":"hi"}']);
    assert.equal(pinged.code, 0, pinged.stderr);
    assert.equal(JSON.parse(pinged.stdout).target, 'bench-box/text.echo');
    await waitFor('the three calls', () => calls.length >= 3 || undefined);
    assert.deepEqual(calls[0].args, { text: 'hi' });
    assert.equal(calls[0].caller.sub, 'operator');
    // The input schema is checked on the hub before anything reaches the device.
    const invalid = await cli(['ping', 'bench-box', '--skill', 'text.echo', '--args', '{}']);
    assert.notEqual(invalid.code, 0);
    assert.match(invalid.stderr, /VALIDATION_FAILED/);
    assert.equal(calls.length, 3);
  });

  it('answers with a code a person can act on: an unknown device, a bad count, bad JSON', async () => {
    const unknown = await cli(['ping', 'nowhere']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /DEVICE_UNAVAILABLE: device nowhere is not connected to this hub/);
    const count = await cli(['ping', 'bench-box', '--count', '0']);
    assert.match(count.stderr, /VALIDATION_FAILED: count must be a whole number from 1 to 100000/);
    const json = await cli(['ping', 'bench-box', '--skill', 'text.echo', '--args', '{nope']);
    assert.match(json.stderr, /VALIDATION_FAILED: --args must be JSON/);
  });

  it('stops pinging when the CLI goes away mid-run', async () => {
    const cli = spawn(
      process.execPath,
      [cliPath, 'devices', 'ping', 'bench-box', '--count', '100000', '--data-dir', hub.dataDir, '--builtins', 'aion.storage,aion.devices'],
      {
        stdio: 'ignore',
      },
    );
    const before = pings;
    await waitFor('pings from the running ping', () => pings - before > 50 || undefined, 30_000, 20);
    cli.kill('SIGKILL');
    await new Promise((r) => cli.once('exit', r));
    await new Promise((r) => setTimeout(r, 300));
    const afterExit = pings;
    await new Promise((r) => setTimeout(r, 700));
    assert.ok(pings - afterExit <= 1, `the hub kept pinging after the CLI exited (${pings - afterExit} more)`);
  });

  it('needs a running server: without one it says so instead of pinging from an empty kernel', async () => {
    const stopped = await aion(['devices', 'ping', 'bench-box', '--data-dir', `${hub.dataDir}-none`, '--builtins', 'aion.storage,aion.devices']);
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.stderr, /CONTROL_UNAVAILABLE: no Aion server is running/);
  });
});
