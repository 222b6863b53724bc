import assert from 'node:assert/strict';
import { isSandboxError, type SandboxError, type SandboxErrorCode } from '../../src/index.js';

/** Awaits `promise`, which must fail with a SandboxError of `code`; returns that error. */
export async function rejectsWith(promise: Promise<unknown>, code: SandboxErrorCode): Promise<SandboxError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isSandboxError(err), `expected a SandboxError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}
