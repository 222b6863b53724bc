import assert from 'node:assert/strict';
import { isPrivateAddress, NetworkPolicy } from '../src/index.js';
import { guardedLookup, PolicyDenied } from '../src/wasm/guest-fetch.js';

describe('NetworkPolicy', () => {
  it('treats loopback, private, link-local and unique-local ranges as private', () => {
    for (const address of [
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '127.0.0.1',
      '127.8.8.8',
      '169.254.169.254',
      '0.0.0.0',
      '::1',
      '::',
      'fc00::1',
      'fd12:3456::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
    ]) {
      assert.ok(isPrivateAddress(address), address);
    }
    for (const address of ['8.8.8.8', '172.32.0.1', '192.169.0.1', '2606:4700::1111', 'example.com']) {
      assert.ok(!isPrivateAddress(address), address);
    }
  });

  it('matches exact hosts, ports and suffix patterns; only exact names are explicit', () => {
    const policy = new NetworkPolicy(['api.example.com', '*.example.org', '127.0.0.1:8080', '[::1]']);
    assert.deepEqual(policy.match(new URL('https://api.example.com/x')), { explicit: true });
    assert.deepEqual(policy.match(new URL('https://API.Example.com:443/x')), { explicit: true });
    assert.equal(policy.match(new URL('https://other.example.com/')), null);
    assert.deepEqual(policy.match(new URL('https://a.b.example.org/')), { explicit: false });
    assert.equal(policy.match(new URL('https://example.org/')), null);
    assert.equal(policy.match(new URL('https://evilexample.org/')), null);
    assert.deepEqual(policy.match(new URL('http://127.0.0.1:8080/')), { explicit: true });
    assert.equal(policy.match(new URL('http://127.0.0.1:8081/')), null);
    assert.equal(policy.match(new URL('http://127.0.0.1/')), null);
    assert.deepEqual(policy.match(new URL('http://[::1]:9000/')), { explicit: true });
    assert.ok(new NetworkPolicy([]).isEmpty);
  });

  it('refuses a name that resolves to a private address unless it was declared by name', async () => {
    const resolve = (explicit: boolean) =>
      new Promise<unknown>((done) => guardedLookup(explicit, 'localhost')('localhost', {}, (err: unknown, address: unknown) => done(err ?? address)));
    assert.ok((await resolve(false)) instanceof PolicyDenied);
    assert.equal(await resolve(true), '127.0.0.1');
  });
});
