import { stat } from 'node:fs/promises';
import type { CancellationToken } from '@aion/extension-api';
import { AionError } from '@aion/extension-api';
import { ProviderFailure, type ChatMessage, type ChatRequest, type FinishReason, type ModelInfo, type ProviderEvent } from '@aion/provider-kit';
import {
  GgufFileType,
  getLlama,
  LlamaChat,
  LlamaLogLevel,
  readGgufFileInfo,
  type ChatHistoryItem,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
} from 'node-llama-cpp';
import type { LocalModelSpec, ResolvedConfiguration } from './config.js';
import { SequencePool } from './sequencePool.js';
import { TokenChannel } from './tokenChannel.js';

/** Where a loaded model runs, as llama.cpp reports it. */
export interface ModelPlacement {
  /** `cuda`, `vulkan`, `metal`, or `cpu`. */
  backend: string;
  gpuLayers: number;
  totalLayers: number;
}

/** What `aion models list` shows for one configured model. */
export interface LocalModelStatus {
  id: string;
  path: string;
  state: 'not loaded' | 'loading' | 'loaded' | 'failed';
  sizeBytes?: number;
  quantization?: string;
  architecture?: string;
  contextSize: number;
  placement?: ModelPlacement;
  running: number;
  queued: number;
  tokensGenerated: number;
  error?: { code: string; message: string };
}

interface Loaded {
  model: LlamaModel;
  context: LlamaContext;
  pool: SequencePool<LlamaContextSequence>;
  placement: ModelPlacement;
  contextSize: number;
}

interface Slot {
  spec: LocalModelSpec;
  loading?: Promise<Loaded>;
  loaded?: Loaded;
  failure?: ProviderFailure;
  tokensGenerated: number;
}

/**
 * The configured GGUF models of this host, loaded by llama.cpp through node-llama-cpp: one llama.cpp
 * runtime per process, one context per model with `parallel` sequences, chats beyond that queued.
 */
export class LocalModelService {
  private llama?: Promise<Llama>;
  private readonly slots = new Map<string, Slot>();
  private disposed = false;
  /** llama.cpp reports why a load failed only in its log. */
  private lastNativeError?: string;

  constructor(
    private readonly config: ResolvedConfiguration,
    private readonly log: (level: 'info' | 'warn', message: string) => void = () => {},
  ) {
    for (const spec of config.models) {
      if (this.slots.has(spec.id))
        throw new AionError('CONFIG_INVALID', `two local models are named ${spec.id}: give each entry of models (and modelId) its own id`);
      this.slots.set(spec.id, { spec, tokensGenerated: 0 });
    }
  }

  /** Starts loading every configured model, without waiting. */
  preload(): void {
    for (const slot of this.slots.values()) void this.load(slot).catch(() => {});
  }

  /** Models whose files are present and readable GGUF; rejects with the first problem when none is. */
  async listModels(): Promise<ModelInfo[]> {
    if (!this.config.enabled) throw disabled().toAionError();
    const found: ModelInfo[] = [];
    let firstProblem: ProviderFailure | undefined;
    for (const slot of this.slots.values()) {
      try {
        await inspectFile(slot.spec.path, slot.spec.id);
        found.push({
          id: slot.spec.id,
          displayName: `${slot.spec.id} (local GGUF)`,
          contextWindow: slot.loaded?.contextSize ?? slot.spec.contextSize,
          costPer1kInput: 0,
          costPer1kOutput: 0,
          capabilities: slot.spec.capabilities,
          tools: false,
          streaming: true,
        });
      } catch (err) {
        firstProblem ??= asFailure(err, slot.spec);
      }
    }
    if (found.length === 0)
      throw (
        firstProblem ??
        new ProviderFailure(
          'LOCAL_MODEL_NOT_FOUND',
          'no local model is configured: set LOCAL_AI_MODEL_PATH (or extensions["aion.provider-llamacpp"].modelPath) to a GGUF file',
        )
      ).toAionError();
    return found;
  }

  /** One status per configured model, waiting for loads in progress so the placement is known. */
  async status(): Promise<LocalModelStatus[]> {
    const out: LocalModelStatus[] = [];
    for (const slot of this.slots.values()) {
      await slot.loading?.catch(() => {});
      const status: LocalModelStatus = {
        id: slot.spec.id,
        path: slot.spec.path,
        state: slot.loaded ? 'loaded' : slot.failure ? 'failed' : slot.loading ? 'loading' : 'not loaded',
        contextSize: slot.loaded?.contextSize ?? slot.spec.contextSize,
        running: slot.loaded?.pool.busy ?? 0,
        queued: slot.loaded?.pool.waiting ?? 0,
        tokensGenerated: slot.tokensGenerated,
      };
      try {
        const file = await inspectFile(slot.spec.path, slot.spec.id);
        Object.assign(status, file);
      } catch (err) {
        const failure = asFailure(err, slot.spec);
        status.error = { code: failure.code, message: failure.message };
      }
      if (slot.failure) status.error = { code: slot.failure.code, message: slot.failure.message };
      if (slot.loaded) status.placement = slot.loaded.placement;
      out.push(status);
    }
    return out;
  }

  /** Streams one answer; never throws: a failure is the last event. */
  async *chat(request: ChatRequest, token?: CancellationToken): AsyncGenerator<ProviderEvent> {
    let produced = false;
    try {
      this.assertEnabled();
      const slot = this.slots.get(request.model) ?? (request.model === 'local' && this.slots.size > 0 ? this.slots.values().next().value : undefined);
      if (!slot)
        throw new ProviderFailure(
          'PROVIDER_BAD_REQUEST',
          `no local model is named ${request.model}; configured: ${[...this.slots.keys()].join(', ') || 'none'}`,
          { status: 404 },
        );
      const timeoutMs = request.timeoutMs ?? this.config.timeoutMs;
      const loaded = await this.load(slot);
      const sequence = await loaded.pool.acquire(token, timeoutMs, slot.spec.id);
      try {
        for await (const event of this.generate(slot, loaded, sequence, request, timeoutMs, token)) {
          if (event.type === 'token') produced = true;
          yield event;
        }
      } finally {
        loaded.pool.release(sequence);
      }
    } catch (err) {
      const failure = token?.isCancellationRequested
        ? new ProviderFailure('CANCELLED', 'cancelled')
        : err instanceof ProviderFailure
          ? err
          : new ProviderFailure('PROVIDER_UNAVAILABLE', `llama.cpp failed: ${(err as Error).message}`, { retryable: true });
      yield failure.toEvent(produced);
    }
  }

  private async *generate(
    slot: Slot,
    loaded: Loaded,
    sequence: LlamaContextSequence,
    request: ChatRequest,
    timeoutMs: number,
    token?: CancellationToken,
  ): AsyncGenerator<ProviderEvent> {
    const chat = new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false });
    const abort = new AbortController();
    const cancelled = token?.onCancellationRequested(() => abort.abort());
    const channel = new TokenChannel();
    let stalled = false;
    let watchdog: NodeJS.Timeout | undefined;
    const armWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        stalled = true;
        abort.abort();
      }, timeoutMs);
    };
    let generation: Promise<unknown> | undefined;
    try {
      const history = toHistory(request.messages);
      const promptTokens = chat.chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(loaded.model.tokenizer).length;
      const room = loaded.contextSize - promptTokens;
      if (room <= 0)
        throw new ProviderFailure(
          'PROVIDER_BAD_REQUEST',
          `the prompt is ${promptTokens} tokens; the local model ${slot.spec.id} has a context of ${loaded.contextSize} (contextSize): shorten the conversation`,
          { status: 400 },
        );
      const asked = request.maxTokens === undefined ? undefined : Math.min(request.maxTokens, this.config.maxTokens);
      if (asked !== undefined && promptTokens + asked > loaded.contextSize) {
        throw new ProviderFailure(
          'PROVIDER_BAD_REQUEST',
          `the prompt (${promptTokens} tokens) plus max_tokens ${asked} exceeds the context of ${loaded.contextSize} tokens of the local model ${slot.spec.id}: ask for at most ${room}`,
          { status: 400 },
        );
      }
      const maxTokens = Math.min(asked ?? this.config.maxTokens, room);
      let outputTokens = 0;
      armWatchdog();
      generation = chat
        .generateResponse(history, {
          maxTokens,
          temperature: request.temperature,
          customStopTriggers: request.stop?.length ? request.stop : undefined,
          signal: abort.signal,
          stopOnAbortSignal: true,
          onToken: (tokens) => {
            outputTokens += tokens.length;
            slot.tokensGenerated += tokens.length;
            armWatchdog();
          },
          onTextChunk: (text) => channel.push(text),
        })
        .then(
          (result) => {
            channel.end();
            return result;
          },
          (err) => {
            channel.end(err);
            throw err;
          },
        );
      for await (const text of channel) if (text) yield { type: 'token', text };
      const result = (await generation) as Awaited<ReturnType<LlamaChat['generateResponse']>>;
      if (stalled) throw new ProviderFailure('PROVIDER_TIMEOUT', `the local model ${slot.spec.id} made no progress for ${timeoutMs} ms`, { retryable: true });
      if (abort.signal.aborted) throw new ProviderFailure('CANCELLED', 'cancelled');
      yield { type: 'usage', inputTokens: promptTokens, outputTokens };
      yield { type: 'done', finishReason: finishReason(result.metadata.stopReason) };
    } finally {
      clearTimeout(watchdog);
      cancelled?.dispose();
      // A consumer that stops reading ends generation too, and the sequence is only reused once llama.cpp let go of it.
      abort.abort();
      await generation?.catch(() => {});
      chat.dispose({ disposeSequence: false });
    }
  }

  private readonly onNativeError = (message: string) => {
    this.lastNativeError = message;
    this.log('warn', `llama.cpp: ${message}`);
  };

  private runtime(): Promise<Llama> {
    this.llama ??= sharedRuntime(this.config, this.onNativeError);
    return this.llama;
  }

  private load(slot: Slot): Promise<Loaded> {
    if (slot.loaded) return Promise.resolve(slot.loaded);
    slot.loading ??= this.doLoad(slot).then(
      (loaded) => {
        slot.loaded = loaded;
        slot.failure = undefined;
        return loaded;
      },
      (err) => {
        slot.failure = asFailure(err, slot.spec);
        // A later chat tries again: the file may have been fixed.
        slot.loading = undefined;
        throw slot.failure;
      },
    );
    return slot.loading;
  }

  private async doLoad(slot: Slot): Promise<Loaded> {
    const { spec } = slot;
    await inspectFile(spec.path, spec.id);
    const llama = await this.runtime();
    const gpuLayers = llama.gpu === false ? 0 : spec.gpuLayers;
    if (llama.gpu === false && spec.gpuLayers !== 'auto' && spec.gpuLayers !== 0)
      this.log(
        'warn',
        `local model ${spec.id}: gpuLayers ${spec.gpuLayers} asked, but llama.cpp found no usable GPU (gpu: ${this.config.gpu}); running on the CPU`,
      );
    let model: LlamaModel;
    this.lastNativeError = undefined;
    try {
      model = await llama.loadModel({ modelPath: spec.path, gpuLayers });
    } catch (err) {
      // The native log lines are delivered on a later turn of the event loop.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const nativeError = this.lastNativeError as string | undefined;
      const reason = nativeError?.includes('error loading model') ? nativeError : (err as Error).message;
      throw new ProviderFailure('LOCAL_MODEL_INVALID', `llama.cpp could not load ${spec.path} (${spec.id}): ${reason}`, { status: 503 });
    }
    const contextSize = Math.min(spec.contextSize, model.trainContextSize);
    const parallel = this.config.parallel;
    const context = await model.createContext({ contextSize, sequences: parallel, ...(this.config.threads > 0 ? { threads: this.config.threads } : {}) });
    const sequences = Array.from({ length: parallel }, () => context.getSequence());
    const placement: ModelPlacement = {
      backend: llama.gpu === false ? 'cpu' : llama.gpu,
      gpuLayers: model.gpuLayers,
      totalLayers: model.fileInsights.totalLayers,
    };
    if (this.disposed) {
      await model.dispose();
      throw new ProviderFailure('PROVIDER_UNAVAILABLE', 'the provider is shutting down');
    }
    this.log(
      'info',
      `local model ${spec.id} loaded from ${spec.path}: ${placement.backend}, ${placement.gpuLayers}/${placement.totalLayers} layers on the GPU, context ${context.contextSize}`,
    );
    return { model, context, pool: new SequencePool(sequences, this.config.maxQueued), placement, contextSize: context.contextSize };
  }

  private assertEnabled(): void {
    if (!this.config.enabled) throw disabled();
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    nativeErrorListeners.delete(this.onNativeError);
    for (const slot of this.slots.values()) {
      const loaded = slot.loaded ?? (await slot.loading?.catch(() => undefined));
      loaded?.pool.rejectAll(new ProviderFailure('PROVIDER_UNAVAILABLE', 'the provider is shutting down', { retryable: true }));
      await loaded?.model.dispose();
    }
  }
}

const runtimes = new Map<string, Promise<Llama>>();
const nativeErrorListeners = new Set<(message: string) => void>();

/**
 * One llama.cpp runtime per process and backend setting, shared by every service: the native backend
 * is process-wide, and disposing one runtime while another loads models has hung llama.cpp.
 */
function sharedRuntime(config: ResolvedConfiguration, onNativeError: (message: string) => void): Promise<Llama> {
  nativeErrorListeners.add(onNativeError);
  const key = JSON.stringify([config.gpu, config.threads]);
  let runtime = runtimes.get(key);
  if (!runtime) {
    runtime = getLlama({
      gpu: config.gpu === 'cpu' ? false : config.gpu,
      // Nothing is built or downloaded at run time: only the prebuilt binaries installed with the package.
      build: 'never',
      skipDownload: true,
      progressLogs: false,
      logLevel: LlamaLogLevel.error,
      logger: (level, message) => {
        if (level !== LlamaLogLevel.error && level !== LlamaLogLevel.fatal) return;
        for (const listener of nativeErrorListeners) listener(message.trim());
      },
      ...(config.threads > 0 ? { maxThreads: config.threads } : {}),
    });
    runtimes.set(key, runtime);
    runtime.catch(() => runtimes.delete(key));
  }
  return runtime;
}

/** Size, quantization and architecture from the file's GGUF header; the typed failure when it is missing or not GGUF. */
async function inspectFile(path: string, id: string): Promise<{ sizeBytes: number; quantization: string; architecture?: string }> {
  let sizeBytes: number;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error('not a file');
    sizeBytes = info.size;
  } catch (err) {
    throw new ProviderFailure(
      'LOCAL_MODEL_NOT_FOUND',
      `the local model ${id} has no file at ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): check LOCAL_AI_MODEL_PATH / modelPath`,
      { status: 503 },
    );
  }
  try {
    const info = await readGgufFileInfo(path, { readTensorInfo: false, logWarnings: false });
    const fileType = info.metadata.general?.file_type;
    return {
      sizeBytes,
      quantization: fileType === undefined ? 'unknown' : (GgufFileType[fileType] ?? `file type ${fileType}`),
      architecture: info.metadata.general?.architecture,
    };
  } catch (err) {
    throw new ProviderFailure('LOCAL_MODEL_INVALID', `${path} (${id}) is not a GGUF model file llama.cpp can read: ${(err as Error).message}`, { status: 503 });
  }
}

const disabled = () =>
  new ProviderFailure(
    'PROVIDER_UNAVAILABLE',
    'the local model is off: set LOCAL_AI_ENABLED=true (or extensions["aion.provider-llamacpp"].enabled) and LOCAL_AI_MODEL_PATH',
  );

function asFailure(err: unknown, spec: LocalModelSpec): ProviderFailure {
  return err instanceof ProviderFailure
    ? err
    : new ProviderFailure('LOCAL_MODEL_INVALID', `the local model ${spec.id} failed to load: ${(err as Error).message}`, { status: 503 });
}

function finishReason(stopReason: string): FinishReason {
  return stopReason === 'maxTokens' ? 'length' : 'stop';
}

/** The conversation as node-llama-cpp's chat history, ending with the empty model turn to complete. */
function toHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  for (const message of messages) {
    const text = message.content ?? '';
    if (message.role === 'system') history.push({ type: 'system', text });
    else if (message.role === 'assistant') {
      const calls = (message.toolCalls ?? []).map((c) => `[called ${c.name}(${c.arguments})]`);
      history.push({ type: 'model', response: [[text, ...calls].filter(Boolean).join('\n')] });
    } else if (message.role === 'tool') history.push({ type: 'user', text: `Result of ${message.name ?? 'the tool'}: ${text}` });
    else history.push({ type: 'user', text });
  }
  history.push({ type: 'model', response: [] });
  return history;
}
