import assert from 'node:assert/strict';
import { ROOT_CONTEXT, context } from '@opentelemetry/api';
import { extensions, runAsCaller, runInExtensionContext, type ExtensionApiBinding } from '@aion/extension-api';
import { REQUEST_ID_KEY, enableCallContext } from '../src/index.js';

const binding = { extensionId: 'test.frames' } as unknown as ExtensionApiBinding;
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('the call context beside the extension API frame', () => {
  before(() => enableCallContext());

  it('keeps the tracing context and the extension frame together across awaits, whichever is entered first', async () => {
    const traced = ROOT_CONTEXT.setValue(REQUEST_ID_KEY, 'req-1');
    await context.with(traced, () =>
      runAsCaller('test.caller', async () => {
        await tick();
        assert.equal(context.active().getValue(REQUEST_ID_KEY), 'req-1', 'the caller frame keeps the tracing context');
        assert.equal(extensions.caller(), 'test.caller');
        await runInExtensionContext(binding, async () => {
          await tick();
          assert.equal(context.active().getValue(REQUEST_ID_KEY), 'req-1', 'the extension frame keeps it too');
          assert.equal(extensions.caller(), 'test.caller', 'and the caller');
          const inner = ROOT_CONTEXT.setValue(REQUEST_ID_KEY, 'req-2');
          await context.with(inner, async () => {
            await tick();
            assert.equal(context.active().getValue(REQUEST_ID_KEY), 'req-2');
            assert.equal(extensions.caller(), 'test.caller', 'a new tracing context keeps the frame');
          });
          assert.equal(context.active().getValue(REQUEST_ID_KEY), 'req-1', 'and ends with its callback');
        });
      }),
    );
    assert.equal(context.active(), ROOT_CONTEXT);
  });
});
