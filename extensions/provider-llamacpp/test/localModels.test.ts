import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { CancellationTokenSource, isAionError } from '@aion/extension-api';
import type { ChatRequest, ProviderEvent } from '@aion/provider-kit';
import { resolveConfiguration, type LlamaCppConfiguration } from '../src/config.js';
import { LocalModelService } from '../src/localModels.js';
import { writeTinyLlamaGguf } from '../src/testing.js';

/** A section as the kernel hands it over: validated against the manifest's schema, its defaults filled in. */
function configured(section: Partial<LlamaCppConfiguration>): LlamaCppConfiguration {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const value = structuredClone(section);
  const validate = new Ajv2020({ useDefaults: true, strict: false }).compile({ type: 'object', ...manifest.contributes.configuration });
  assert.ok(validate(value), JSON.stringify(validate.errors));
  return value as LlamaCppConfiguration;
}

const hello = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'tiny',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'hello world' },
  ],
  ...extra,
});

async function collect(events: AsyncIterable<ProviderEvent>): Promise<ProviderEvent[]> {
  const out: ProviderEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

const tokens = (events: ProviderEvent[]) => events.filter((e) => e.type === 'token');
const last = (events: ProviderEvent[]) => events[events.length - 1]!;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('provider-llamacpp: a real GGUF model through node-llama-cpp', function () {
  this.timeout(120_000);
  let dir: string;
  let model: string;
  const services: LocalModelService[] = [];
  const service = (config: Partial<LlamaCppConfiguration> = {}) => {
    // One thread: the test machine is small and shared, and llama.cpp threads spin while they wait.
    const created = new LocalModelService(
      resolveConfiguration(configured({ enabled: true, modelPath: model, modelId: 'tiny', threads: 1, contextSize: 512, ...config })),
    );
    services.push(created);
    return created;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aion-llamacpp-'));
    model = join(dir, 'tiny.gguf');
    await writeTinyLlamaGguf(model);
  });
  afterEach(async () => {
    for (const s of services.splice(0)) await s.dispose();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads the generated GGUF and streams tokens, then usage, then done', async () => {
    const local = service();
    const events = await collect(local.chat(hello({ maxTokens: 12 })));
    assert.ok(tokens(events).length >= 2, JSON.stringify(events));
    const usage = events.find((e) => e.type === 'usage');
    assert.ok(usage && usage.type === 'usage' && usage.inputTokens > 0 && usage.outputTokens === 12, JSON.stringify(usage));
    assert.deepEqual(last(events), { type: 'done', finishReason: 'length' });
    const [status] = await local.status();
    assert.equal(status!.state, 'loaded');
    assert.equal(status!.quantization, 'ALL_F32');
    assert.equal(status!.architecture, 'llama');
    assert.equal(status!.placement?.backend, 'cpu');
    assert.equal(status!.placement?.totalLayers, 3);
    assert.equal(status!.tokensGenerated, 12);
    const listed = await local.listModels();
    assert.deepEqual(
      listed.map((m) => [m.id, m.contextWindow, m.costPer1kInput, m.tools]),
      [['tiny', 512, 0, false]],
    );
  });

  it('gives the same answer to the same request (greedy decoding) and stops at a stop sequence', async () => {
    const local = service();
    const first = tokens(await collect(local.chat(hello({ maxTokens: 10 }))))
      .map((e) => (e.type === 'token' ? e.text : ''))
      .join('');
    const second = tokens(await collect(local.chat(hello({ maxTokens: 10 }))))
      .map((e) => (e.type === 'token' ? e.text : ''))
      .join('');
    assert.equal(first, second);
    const stopAt = first.trim().slice(0, 1);
    const stopped = await collect(local.chat(hello({ maxTokens: 10, stop: [stopAt] })));
    const text = tokens(stopped)
      .map((e) => (e.type === 'token' ? e.text : ''))
      .join('');
    assert.ok(!text.includes(stopAt), `${JSON.stringify(text)} should stop before ${JSON.stringify(stopAt)}`);
    assert.deepEqual(last(stopped), { type: 'done', finishReason: 'stop' });
  });

  it('cancelling mid-stream stops generation: CANCELLED, no more tokens generated, the model serves the next chat', async () => {
    const local = service({ maxTokens: 100_000, contextSize: 2048 });
    const source = new CancellationTokenSource();
    const events: ProviderEvent[] = [];
    for await (const event of local.chat(hello(), source.token)) {
      events.push(event);
      if (tokens(events).length === 3) source.cancel();
    }
    assert.equal(last(events).type, 'error');
    assert.equal((last(events) as { code: string }).code, 'CANCELLED');
    const afterCancel = (await local.status())[0]!.tokensGenerated;
    assert.ok(afterCancel < 500, `generation went on to ${afterCancel} tokens`);
    await sleep(300);
    assert.equal((await local.status())[0]!.tokensGenerated, afterCancel, 'tokens were generated after the chat was cancelled');
    assert.equal(last(await collect(local.chat(hello({ maxTokens: 4 })))).type, 'done');
  });

  it('a consumer that stops reading ends generation too', async () => {
    const local = service({ maxTokens: 100_000, contextSize: 2048 });
    let seen = 0;
    for await (const event of local.chat(hello())) if (event.type === 'token' && ++seen === 2) break;
    const stopped = (await local.status())[0]!.tokensGenerated;
    await sleep(300);
    assert.equal((await local.status())[0]!.tokensGenerated, stopped);
    assert.equal((await local.status())[0]!.running, 0);
  });

  it('queues concurrent chats per model and refuses past maxQueued', async () => {
    const local = service({ parallel: 1, maxQueued: 1 });
    await collect(local.chat(hello({ maxTokens: 1 })));
    const first = collect(local.chat(hello({ maxTokens: 400 })));
    const second = collect(local.chat(hello({ maxTokens: 400 })));
    await sleep(5);
    const [busy] = await local.status();
    assert.equal(busy!.running, 1);
    assert.equal(busy!.queued, 1);
    const third = await collect(local.chat(hello({ maxTokens: 40 })));
    assert.equal(third.length, 1);
    assert.equal((third[0] as { code: string }).code, 'PROVIDER_UNAVAILABLE');
    assert.match((third[0] as { message: string }).message, /busy/);
    assert.equal((third[0] as { retryable: boolean }).retryable, true);
    const answers = await Promise.all([first, second]);
    for (const events of answers) {
      assert.deepEqual(last(events), { type: 'done', finishReason: 'length' });
      assert.equal(tokens(events).length > 0, true);
    }
    // Both answers are whole and the same: the queued chat did not share the first one's sequence state.
    const text = (events: ProviderEvent[]) =>
      tokens(events)
        .map((e) => (e.type === 'token' ? e.text : ''))
        .join('');
    assert.equal(text(answers[0]!), text(answers[1]!));
  });

  it('runs two chats at once with parallel: 2', async () => {
    const local = service({ parallel: 2 });
    const both = await Promise.all([collect(local.chat(hello({ maxTokens: 8 }))), collect(local.chat(hello({ maxTokens: 8 })))]);
    for (const events of both) assert.deepEqual(last(events), { type: 'done', finishReason: 'length' });
  });

  it('enforces the context size and the max-token ceiling', async () => {
    const local = service({ contextSize: 256, maxTokens: 1000 });
    const long = await collect(local.chat(hello({ messages: [{ role: 'user', content: 'hello world '.repeat(60) }] })));
    assert.equal(long.length, 1);
    assert.equal((long[0] as { code: string }).code, 'PROVIDER_BAD_REQUEST');
    assert.match((long[0] as { message: string }).message, /has a context of 256 \(contextSize\)/);
    const tooMany = await collect(local.chat(hello({ maxTokens: 300 })));
    assert.equal((tooMany[0] as { code: string }).code, 'PROVIDER_BAD_REQUEST');
    assert.match((tooMany[0] as { message: string }).message, /ask for at most \d+/);
    const unbounded = await collect(local.chat(hello()));
    const filled = unbounded.find((e) => e.type === 'usage');
    assert.ok(filled?.type === 'usage' && filled.inputTokens + filled.outputTokens <= 256, 'an answer without max_tokens stops at the end of the context');
    assert.deepEqual(last(unbounded), { type: 'done', finishReason: 'length' });
    const ceiling = service({ maxTokens: 5 });
    const capped = await collect(ceiling.chat(hello({ maxTokens: 20 })));
    const usage = capped.find((e) => e.type === 'usage');
    assert.equal(usage?.type === 'usage' && usage.outputTokens, 5);
    assert.deepEqual(last(capped), { type: 'done', finishReason: 'length' });
  });

  it('refuses a missing file with LOCAL_MODEL_NOT_FOUND and keeps serving the good model', async () => {
    const local = service({ models: [{ id: 'gone', path: join(dir, 'missing.gguf') }] });
    const events = await collect(local.chat(hello({ model: 'gone' })));
    assert.equal(events.length, 1);
    assert.equal((events[0] as { code: string }).code, 'LOCAL_MODEL_NOT_FOUND');
    assert.match((events[0] as { message: string }).message, /missing\.gguf.*LOCAL_AI_MODEL_PATH/);
    assert.deepEqual(
      (await local.listModels()).map((m) => m.id),
      ['tiny'],
    );
    assert.equal(last(await collect(local.chat(hello({ maxTokens: 2 })))).type, 'done');
    const lonely = service({ modelPath: join(dir, 'missing.gguf') });
    await assert.rejects(lonely.listModels(), (err: unknown) => isAionError(err) && err.code === 'LOCAL_MODEL_NOT_FOUND');
  });

  it('refuses a file that is not GGUF, and a truncated GGUF, with LOCAL_MODEL_INVALID', async () => {
    const junk = join(dir, 'junk.gguf');
    await writeFile(junk, 'this is not a model '.repeat(50));
    const cut = join(dir, 'cut.gguf');
    await writeTinyLlamaGguf(cut);
    await truncate(cut, 200_000);
    const local = service({
      models: [
        { id: 'junk', path: junk },
        { id: 'cut', path: cut },
      ],
    });
    const notGguf = await collect(local.chat(hello({ model: 'junk' })));
    assert.equal((notGguf[0] as { code: string }).code, 'LOCAL_MODEL_INVALID');
    assert.match((notGguf[0] as { message: string }).message, /not a GGUF model file/);
    const truncated = await collect(local.chat(hello({ model: 'cut' })));
    assert.equal((truncated[0] as { code: string }).code, 'LOCAL_MODEL_INVALID');
    assert.match((truncated[0] as { message: string }).message, /could not load/);
    const statuses = await local.status();
    assert.deepEqual(
      statuses.map((s) => [s.id, s.state, s.error?.code]),
      [
        ['tiny', 'not loaded', undefined],
        ['junk', 'failed', 'LOCAL_MODEL_INVALID'],
        ['cut', 'failed', 'LOCAL_MODEL_INVALID'],
      ],
    );
    assert.equal(last(await collect(local.chat(hello({ maxTokens: 2 })))).type, 'done');
  });

  it('answers an unknown model with a 404 bad request, and a disabled provider as unavailable', async () => {
    const local = service();
    const unknown = await collect(local.chat(hello({ model: 'nope' })));
    assert.deepEqual([(unknown[0] as { code: string }).code, (unknown[0] as { status: number }).status], ['PROVIDER_BAD_REQUEST', 404]);
    const off = service({ enabled: false });
    const events = await collect(off.chat(hello()));
    assert.equal((events[0] as { code: string }).code, 'PROVIDER_UNAVAILABLE');
    assert.match((events[0] as { message: string }).message, /LOCAL_AI_ENABLED/);
    await assert.rejects(off.listModels(), /LOCAL_AI_ENABLED/);
  });
});
