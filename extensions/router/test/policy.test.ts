import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { effectivePolicy, parsePolicies, PolicyStore } from '../src/policies/policy.js';

const until = async (check: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('policies', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'aion-policy-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a bad document, naming the JSON path', () => {
    assert.throws(() => parsePolicies({ intents: { code: { privacy: 'everywhere' } } }, 'test'), /intents\.code\.privacy/);
    assert.throws(() => parsePolicies({ overrides: [{ match: {} }] }, 'test'), /engine/);
    assert.throws(
      () => parsePolicies({ tiers: { gold: {} } }, 'test'),
      (e: Error & { code?: string }) => e.code === 'POLICY_INVALID',
    );
  });

  it('merges defaults and the intent: deny lists add up, the tightest budget wins', () => {
    const doc = parsePolicies(
      { defaults: { deny: ['a'], budget_usd: 1, tier: 'local' }, intents: { code: { deny: ['b'], budget_usd: 0.5, allow: ['x/*'] } } },
      'test',
    );
    const p = effectivePolicy(doc, { intent: 'code', privacy: 'hybrid', metadata: {} });
    assert.deepEqual(p.deny, ['a', 'b']);
    assert.deepEqual(p.allow, ['x/*']);
    assert.equal(p.budgetUsd, 0.5);
    assert.equal(p.tier, 'local');
  });

  it('reloads the file when it changes, also when it is replaced, and keeps the last good one on error', async () => {
    const file = join(dir, 'policies.json');
    writeFileSync(file, JSON.stringify({ defaults: { deny: ['openai'] } }));
    const store = new PolicyStore({ file });
    await store.start();
    try {
      assert.deepEqual(store.policies.defaults?.deny, ['openai']);
      writeFileSync(file, JSON.stringify({ defaults: { deny: ['anthropic'] } }));
      await until(() => store.policies.defaults?.deny?.[0] === 'anthropic');
      writeFileSync(join(dir, 'next.json'), JSON.stringify({ defaults: { deny: ['ollama'] } }));
      renameSync(join(dir, 'next.json'), file);
      await until(() => store.policies.defaults?.deny?.[0] === 'ollama');
      writeFileSync(file, '{ not json');
      await until(() => store.lastError !== undefined);
      assert.match(store.lastError!, /not valid JSON/);
      assert.deepEqual(store.policies.defaults?.deny, ['ollama'], 'the previous policies stay in force');
      await assert.rejects(store.reload(), /not valid JSON/);
    } finally {
      store.dispose();
    }
  });
});
