import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestKernel } from '@aion/core';
import { STORAGE_EXTENSION_DIR } from '../src/testing.js';

export const FIXTURES = join(STORAGE_EXTENSION_DIR, 'test', 'fixtures');

export type ProbeAnswer = { result?: any; error?: { code: string; message: string; details?: any }; prefix?: string };

/** Runs `storage[op](...args)` inside the probe extension `which` (`{p}` in a string argument becomes its prefix). */
export async function probe(kernel: TestKernel, which: 'a' | 'b' | 'c', op: string, ...args: unknown[]): Promise<ProbeAnswer> {
  const res = await kernel.request(`/v1/probe-${which}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ op, args }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as ProbeAnswer;
}
