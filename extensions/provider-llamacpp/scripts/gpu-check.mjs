#!/usr/bin/env node
// Loads a GGUF with GPU offload, generates 64 tokens and prints tokens/s and whether the GPU was used.
// Usage: node scripts/gpu-check.mjs <model.gguf> [--gpu auto|cuda|vulkan] [--layers max|auto|N] [--tokens 64] [--threads N]
// Needs only node-llama-cpp (and its @node-llama-cpp/* binaries for this platform) in a node_modules folder it can resolve.
import { parseArgs } from 'node:util';
import { getLlama, LlamaChat } from 'node-llama-cpp';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    gpu: { type: 'string', default: 'auto' },
    layers: { type: 'string', default: 'max' },
    tokens: { type: 'string', default: '64' },
    threads: { type: 'string' },
  },
});
const modelPath = positionals[0];
if (!modelPath) {
  console.error('usage: node scripts/gpu-check.mjs <model.gguf> [--gpu auto|cuda|vulkan] [--layers max|auto|N] [--tokens 64]');
  process.exit(2);
}
const layers = /^\d+$/.test(values.layers) ? Number(values.layers) : values.layers;
const maxTokens = Number(values.tokens);

const llama = await getLlama({ gpu: values.gpu, build: 'never', skipDownload: true, ...(values.threads ? { maxThreads: Number(values.threads) } : {}) });
console.log(`backend: ${llama.gpu === false ? 'cpu (node-llama-cpp found no usable GPU)' : llama.gpu}`);
if (llama.gpu !== false) {
  const names = await llama.getGpuDeviceNames().catch(() => []);
  const vram = await llama.getVramState();
  console.log(`devices: ${names.join(', ') || 'unknown'}; VRAM ${(vram.total / 2 ** 30).toFixed(1)} GiB total, ${(vram.free / 2 ** 30).toFixed(1)} GiB free`);
}
let start = performance.now();
const model = await llama.loadModel({ modelPath, gpuLayers: llama.gpu === false ? 0 : layers });
console.log(`loaded ${modelPath} in ${(performance.now() - start).toFixed(0)} ms: ${model.gpuLayers}/${model.fileInsights.totalLayers} layers on the GPU`);
const context = await model.createContext({ contextSize: Math.min(2048, model.trainContextSize) });
const chat = new LlamaChat({ contextSequence: context.getSequence() });
let first = 0;
let generated = 0;
start = performance.now();
await chat.generateResponse(
  [
    { type: 'user', text: 'Write a short story about a lighthouse.' },
    { type: 'model', response: [] },
  ],
  {
    maxTokens,
    onTextChunk: () => (first ||= performance.now()),
    onToken: (tokens) => (generated += tokens.length),
  },
);
const seconds = (performance.now() - start) / 1000;
console.log(
  `generated ${generated} tokens in ${seconds.toFixed(3)} s: ${(generated / seconds).toFixed(1)} tokens/s, first token after ${(first - start).toFixed(1)} ms`,
);
console.log(`GPU used: ${llama.gpu !== false && model.gpuLayers > 0 ? 'yes' : 'no'}`);
await llama.dispose();
