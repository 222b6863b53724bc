import assert from 'node:assert/strict';
import * as protocol from '../src/protocol/index.js';
import type { ProtocolSlice } from '../src/protocol/index.js';

const slices = (Object.entries(protocol) as Array<[string, unknown]>).filter(
  (entry): entry is [string, ProtocolSlice] =>
    entry[0].endsWith('Protocol') && typeof entry[1] === 'object' && entry[1] !== null && 'kernel' in entry[1] && 'host' in entry[1],
);

describe('protocol slices', () => {
  it('are exported for every capability', () => {
    assert.deepEqual(slices.map(([name]) => name).sort(), [
      'ClusterProtocol',
      'CommandsProtocol',
      'ContributionsProtocol',
      'EventsProtocol',
      'ExtensionApisProtocol',
      'HooksProtocol',
      'LifecycleProtocol',
      'RealtimeProtocol',
      'RoutesProtocol',
      'SecretsProtocol',
    ]);
  });

  for (const side of ['kernel', 'host'] as const) {
    it(`give every ${side}-side message a wire name no other slice or stream message uses`, () => {
      const owners = new Map<string, string>();
      for (const name of Object.values(protocol.StreamProtocol).map((t) => t.method)) owners.set(name, 'StreamProtocol');
      for (const [slice, messages] of slices) {
        for (const [key, type] of Object.entries(messages[side])) {
          assert.match(type.method, /^\$[a-zA-Z]+$/, `${slice}.${side}.${key}`);
          const other = owners.get(type.method);
          assert.equal(other, undefined, `${slice}.${side}.${key} is ${type.method}, which ${other} already sends`);
          owners.set(type.method, slice);
        }
      }
    });
  }
});
