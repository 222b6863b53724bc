/**
 * Tokens/s and time to first token of the tiny generated model: node-llama-cpp called directly in this
 * process (the baseline) against the same model through the kernel's HTTP front door
 * (/v1/chat/completions, streaming, router → dedicated provider host), in the same run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startTestKernel } from '@aion/core';
import { getLlama, LlamaChat } from 'node-llama-cpp';
import { writeTinyLlamaGguf } from '../src/testing.js';

const require = createRequire(import.meta.url);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const MAX_TOKENS = Number(process.env.BENCH_TOKENS ?? 128);
const THREADS = Number(process.env.BENCH_THREADS ?? 1);

interface Sample {
  firstTokenMs: number;
  tokensPerSecond: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function direct(modelPath: string): Promise<Sample[]> {
  const llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: THREADS });
  const model = await llama.loadModel({ modelPath });
  const context = await model.createContext({ contextSize: 1024, threads: THREADS });
  const sequence = context.getSequence();
  const samples: Sample[] = [];
  for (let i = 0; i <= ROUNDS; i++) {
    const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
    const start = performance.now();
    let first = 0;
    let tokens = 0;
    await chat.generateResponse(
      [
        { type: 'user', text: 'hello world' },
        { type: 'model', response: [] },
      ],
      {
        maxTokens: MAX_TOKENS,
        onTextChunk: () => (first ||= performance.now()),
        onToken: (t) => (tokens += t.length),
      },
    );
    const end = performance.now();
    chat.dispose({ disposeSequence: false });
    if (i > 0) samples.push({ firstTokenMs: first - start, tokensPerSecond: tokens / ((end - start) / 1000) });
  }
  await llama.dispose();
  return samples;
}

async function frontDoor(modelPath: string): Promise<Sample[]> {
  const routerDir = dirname(require.resolve('@aion/ext-router/package.json'));
  const kernel = await startTestKernel({
    builtins: ['aion.router', 'aion.provider-llamacpp'],
    extensions: [join(routerDir, 'test', 'fixtures', 'test-auth')],
    env: { LOCAL_AI_ENABLED: 'true', LOCAL_AI_MODEL_PATH: modelPath },
    config: {
      extensions: {
        'routertest.test-auth': { tokens: { bench: { sub: 'bench', scopes: ['tasks:write'], api_key_id: 'bench' } } },
        'aion.router': { autoDetect: { probeTimeoutMs: 60_000 } },
        'aion.provider-llamacpp': { threads: THREADS, contextSize: 1024, maxTokens: MAX_TOKENS },
      },
    },
  });
  const samples: Sample[] = [];
  try {
    for (let i = 0; i <= ROUNDS; i++) {
      const start = performance.now();
      const res = await kernel.request('/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: 'Bearer bench', 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'aion/local',
          messages: [{ role: 'user', content: 'hello world' }],
          stream: true,
          stream_options: { include_usage: true },
          max_tokens: MAX_TOKENS,
        }),
      });
      if (res.status !== 200) throw new Error(`front door answered ${res.status}: ${await res.text()}`);
      let first = 0;
      let tokens = MAX_TOKENS;
      let buffered = '';
      for await (const chunk of res.body!) {
        buffered += Buffer.from(chunk).toString('utf8');
        if (!first && buffered.includes('"content"')) first = performance.now();
      }
      const end = performance.now();
      const usage = /"completion_tokens":(\d+)/.exec(buffered);
      if (usage) tokens = Number(usage[1]);
      if (i > 0) samples.push({ firstTokenMs: first - start, tokensPerSecond: tokens / ((end - start) / 1000) });
    }
  } finally {
    await kernel.stop();
  }
  return samples;
}

const dir = await mkdtemp(join(tmpdir(), 'aion-llamacpp-bench-'));
try {
  const modelPath = join(dir, 'tiny.gguf');
  await writeTinyLlamaGguf(modelPath, { embeddingLength: 128, blockCount: 4, feedForwardLength: 256 });
  const baseline = await direct(modelPath);
  const http = await frontDoor(modelPath);
  const row = (name: string, s: Sample[]) =>
    `${name.padEnd(36)} ${median(s.map((x) => x.tokensPerSecond))
      .toFixed(0)
      .padStart(10)} ${median(s.map((x) => x.firstTokenMs))
      .toFixed(2)
      .padStart(14)}`;
  console.log(`local model: tiny random llama GGUF, CPU, ${THREADS} thread(s), ${MAX_TOKENS} tokens, median of ${ROUNDS} (after one warm-up)`);
  console.log(`${'path'.padEnd(36)} ${'tokens/s'.padStart(10)} ${'first token ms'.padStart(14)}`);
  console.log(row('node-llama-cpp in process (baseline)', baseline));
  console.log(row('HTTP /v1/chat/completions (stream)', http));
  const ratio = median(http.map((x) => x.tokensPerSecond)) / median(baseline.map((x) => x.tokensPerSecond));
  const overhead = median(http.map((x) => x.firstTokenMs)) - median(baseline.map((x) => x.firstTokenMs));
  console.log(`front door / direct tokens/s: ${ratio.toFixed(2)}x (target >= 0.9x); first-token overhead: ${overhead.toFixed(2)} ms (target <= 2 ms)`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
