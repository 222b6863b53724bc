import assert from 'node:assert/strict';
import { planBulk } from '../src/bulk/bulk.js';

const op = (id: string, extra: Record<string, unknown> = {}) => ({ id, input: `do ${id}`, ...extra });
const code = (expected: string, pattern?: RegExp) => (e: Error & { code?: string; details?: unknown }) => {
  assert.equal(e.code, expected);
  if (pattern) assert.match(e.message, pattern);
  return true;
};

describe('bulk plans', () => {
  it('refuses an unknown dependency, naming it', () => {
    assert.throws(
      () => planBulk({ operations: [op('a'), op('b', { depends_on: ['a', 'zzz'] })] }),
      code('BULK_UNKNOWN_DEPENDENCY', /operation b depends on zzz/),
    );
  });

  it('refuses a cycle, naming its members in order', () => {
    assert.throws(
      () => planBulk({ operations: [op('a', { depends_on: ['c'] }), op('b', { depends_on: ['a'] }), op('c', { depends_on: ['b'] })] }),
      code('BULK_CYCLE', /dependency cycle: a → c → b → a/),
    );
    assert.throws(() => planBulk({ operations: [op('a', { depends_on: ['a'] })] }), code('BULK_CYCLE', /a depends on itself/));
  });

  it('counts a $ref as a dependency, so a cycle through refs is found too', () => {
    const plan = planBulk({ operations: [op('a'), { id: 'b', params: { text: { $ref: 'a.result.text' } } }] });
    assert.deepEqual(plan.operations[1]!.dependsOn, ['a']);
    assert.throws(
      () =>
        planBulk({
          operations: [
            { id: 'a', params: { text: { $ref: 'b.result.text' } } },
            { id: 'b', params: { text: { $ref: 'a.result.text' } } },
          ],
        }),
      code('BULK_CYCLE'),
    );
    assert.throws(
      () => planBulk({ operations: [{ id: 'a', params: { text: { $ref: 'nope.result.text' } } }] }),
      code('BULK_UNKNOWN_DEPENDENCY', /depends on nope/),
    );
  });

  it('holds 1 to 20 operations with unique ids and valid bodies', () => {
    assert.throws(() => planBulk({ operations: [] }), /1 to 20/);
    assert.throws(() => planBulk({ operations: Array.from({ length: 21 }, (_, i) => op(`o${i}`)) }), /1 to 20/);
    assert.throws(() => planBulk({ operations: [op('a'), op('a')] }), /used twice/);
    assert.throws(() => planBulk({ operations: [{ id: 'a', privacy: 'nowhere', input: 'x' }] }), /operation a is invalid/);
    assert.throws(() => planBulk({ operations: [op('a')], execution: 'random' }), /parallel or sequential/);
    assert.equal(planBulk({ operations: [op('a')] }).execution, 'parallel');
  });
});
