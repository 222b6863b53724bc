import { open } from 'node:fs/promises';

/** GGUF metadata value types (gguf.md in the ggml repository). */
const ValueType = { UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10 } as const;
const GGML_TYPE_F32 = 0;
const ALIGNMENT = 32;

type MetadataValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'f32s'; value: number[] }
  | { type: 'i32s'; value: number[] };

interface TensorSpec {
  name: string;
  /** ggml order: the innermost (contiguous) dimension first. */
  dims: number[];
  data: Float32Array;
}

export interface TinyLlamaOptions {
  /** Seed of the random weights; the same seed writes the same file. Default 1. */
  seed?: number;
  embeddingLength?: number;
  blockCount?: number;
  feedForwardLength?: number;
  headCount?: number;
  headCountKv?: number;
  contextLength?: number;
  /** Ordinary word pieces added after the control and byte tokens. */
  words?: string[];
  /** A Jinja chat template stored as `tokenizer.chat_template`; none by default. */
  chatTemplate?: string;
  /** Standard deviation of the random weights. */
  weightScale?: number;
}

const DEFAULT_WORDS = [
  '▁',
  '▁the',
  '▁a',
  '▁hello',
  '▁world',
  '▁local',
  '▁model',
  '▁token',
  'e',
  't',
  'a',
  'o',
  'i',
  'n',
  's',
  'r',
  'h',
  'l',
  'd',
  'c',
  'u',
  'm',
  '.',
  ',',
  '!',
  '?',
];

/** Mulberry32: a small seeded generator, so a test's model is the same file on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes a llama-architecture GGUF (version 3) with random F32 weights and a SentencePiece-style
 * vocabulary (`<unk>`, `<s>`, `</s>`, the 256 byte tokens, then `words`) that llama.cpp loads.
 * Resolves to the file's size in bytes.
 */
export async function writeTinyLlamaGguf(path: string, options: TinyLlamaOptions = {}): Promise<number> {
  const nEmbd = options.embeddingLength ?? 64;
  const nLayer = options.blockCount ?? 2;
  const nFf = options.feedForwardLength ?? 128;
  const nHead = options.headCount ?? 4;
  const nHeadKv = options.headCountKv ?? nHead;
  const nCtx = options.contextLength ?? 2048;
  const scale = options.weightScale ?? 0.5;
  const next = random(options.seed ?? 1);

  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  for (const word of options.words ?? DEFAULT_WORDS) {
    tokens.push(word);
    types.push(1);
  }
  const scores = tokens.map((_token, i) => (types[i] === 1 ? -i / 10 : 0));
  const nVocab = tokens.length;
  const nEmbdKv = (nEmbd / nHead) * nHeadKv;

  const metadata: Array<[string, MetadataValue]> = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: 'aion-tiny-llama' }],
    ['general.file_type', { type: 'u32', value: 0 }],
    ['general.alignment', { type: 'u32', value: ALIGNMENT }],
    ['llama.context_length', { type: 'u32', value: nCtx }],
    ['llama.embedding_length', { type: 'u32', value: nEmbd }],
    ['llama.block_count', { type: 'u32', value: nLayer }],
    ['llama.feed_forward_length', { type: 'u32', value: nFf }],
    ['llama.attention.head_count', { type: 'u32', value: nHead }],
    ['llama.attention.head_count_kv', { type: 'u32', value: nHeadKv }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: 1e-5 }],
    ['llama.rope.dimension_count', { type: 'u32', value: nEmbd / nHead }],
    ['llama.rope.freq_base', { type: 'f32', value: 10000 }],
    ['llama.vocab_size', { type: 'u32', value: nVocab }],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'strings', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'f32s', value: scores }],
    ['tokenizer.ggml.token_type', { type: 'i32s', value: types }],
    ['tokenizer.ggml.unknown_token_id', { type: 'u32', value: 0 }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: 1 }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: 2 }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
  ];
  if (options.chatTemplate) metadata.push(['tokenizer.chat_template', { type: 'string', value: options.chatTemplate }]);

  const randomTensor = (name: string, dims: number[], std = scale): TensorSpec => {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = (next() * 2 - 1) * std;
    return { name, dims, data };
  };
  const ones = (name: string, length: number): TensorSpec => ({ name, dims: [length], data: new Float32Array(length).fill(1) });

  const output = randomTensor('output.weight', [nEmbd, nVocab]);
  // Rows of control and byte tokens are zero, so greedy decoding picks words and never ends an answer early.
  output.data.fill(0, 0, 259 * nEmbd);
  const tensors: TensorSpec[] = [randomTensor('token_embd.weight', [nEmbd, nVocab]), ones('output_norm.weight', nEmbd), output];
  for (let layer = 0; layer < nLayer; layer++) {
    const blk = `blk.${layer}`;
    tensors.push(
      ones(`${blk}.attn_norm.weight`, nEmbd),
      randomTensor(`${blk}.attn_q.weight`, [nEmbd, nEmbd]),
      randomTensor(`${blk}.attn_k.weight`, [nEmbd, nEmbdKv]),
      randomTensor(`${blk}.attn_v.weight`, [nEmbd, nEmbdKv]),
      randomTensor(`${blk}.attn_output.weight`, [nEmbd, nEmbd]),
      ones(`${blk}.ffn_norm.weight`, nEmbd),
      randomTensor(`${blk}.ffn_gate.weight`, [nEmbd, nFf]),
      randomTensor(`${blk}.ffn_up.weight`, [nEmbd, nFf]),
      randomTensor(`${blk}.ffn_down.weight`, [nFf, nEmbd]),
    );
  }

  const header = new ByteWriter();
  header.bytes(Buffer.from('GGUF', 'ascii'));
  header.u32(3);
  header.u64(tensors.length);
  header.u64(metadata.length);
  for (const [key, value] of metadata) {
    header.string(key);
    header.value(value);
  }
  let offset = 0;
  for (const tensor of tensors) {
    header.string(tensor.name);
    header.u32(tensor.dims.length);
    for (const dim of tensor.dims) header.u64(dim);
    header.u32(GGML_TYPE_F32);
    header.u64(offset);
    offset = align(offset + tensor.data.byteLength);
  }
  const head = header.toBuffer();
  const file = await open(path, 'w');
  try {
    let position = 0;
    const write = async (chunk: Uint8Array) => {
      await file.write(chunk, 0, chunk.length, position);
      position += chunk.length;
    };
    await write(head);
    await write(Buffer.alloc(align(position) - position));
    for (const tensor of tensors) {
      await write(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
      await write(Buffer.alloc(align(position) - position));
    }
    return position;
  } finally {
    await file.close();
  }
}

const align = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

class ByteWriter {
  private readonly chunks: Buffer[] = [];

  bytes(chunk: Buffer): void {
    this.chunks.push(chunk);
  }
  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.chunks.push(b);
  }
  i32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.chunks.push(b);
  }
  f32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(n);
    this.chunks.push(b);
  }
  u64(n: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    this.chunks.push(b);
  }
  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.chunks.push(b);
  }
  value(v: MetadataValue): void {
    switch (v.type) {
      case 'u32':
        this.u32(ValueType.UINT32);
        return this.u32(v.value);
      case 'i32':
        this.u32(ValueType.INT32);
        return this.i32(v.value);
      case 'f32':
        this.u32(ValueType.FLOAT32);
        return this.f32(v.value);
      case 'bool':
        this.u32(ValueType.BOOL);
        return this.bytes(Buffer.from([v.value ? 1 : 0]));
      case 'string':
        this.u32(ValueType.STRING);
        return this.string(v.value);
      case 'strings':
        this.array(ValueType.STRING, v.value.length);
        for (const s of v.value) this.string(s);
        return;
      case 'f32s':
        this.array(ValueType.FLOAT32, v.value.length);
        for (const n of v.value) this.f32(n);
        return;
      case 'i32s':
        this.array(ValueType.INT32, v.value.length);
        for (const n of v.value) this.i32(n);
        return;
    }
  }
  private array(elementType: number, count: number): void {
    this.u32(ValueType.ARRAY);
    this.u32(elementType);
    this.u64(count);
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
