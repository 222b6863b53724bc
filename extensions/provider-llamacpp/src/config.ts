import { basename, isAbsolute, resolve } from 'node:path';

/** llama.cpp's compute backend: `auto` picks CUDA, then Vulkan, then the CPU, as node-llama-cpp finds them. */
export type GpuBackend = 'auto' | 'cuda' | 'vulkan' | 'cpu';

/** Layers offloaded to the GPU: `auto` (as many as fit), `max` (all, or fail), or a number (0: CPU only). */
export type GpuLayers = 'auto' | 'max' | number;

/** One more local model besides `modelPath`. */
export interface LocalModelEntry {
  id: string;
  path: string;
  contextSize?: number;
  gpuLayers?: GpuLayers;
  capabilities?: Record<string, number>;
}

/** This extension's configuration section (`extensions["aion.provider-llamacpp"]`). */
export interface LlamaCppConfiguration {
  /** `LOCAL_AI_ENABLED`. */
  enabled?: boolean;
  /** `LOCAL_AI_MODEL_PATH`. */
  modelPath?: string;
  modelId?: string;
  models?: LocalModelEntry[];
  gpu?: GpuBackend;
  gpuLayers?: GpuLayers;
  contextSize?: number;
  maxTokens?: number;
  parallel?: number;
  maxQueued?: number;
  threads?: number;
  timeoutMs?: number;
  preload?: boolean;
  capabilities?: Record<string, number>;
}

/** A configured model with every default filled in. */
export interface LocalModelSpec {
  id: string;
  path: string;
  contextSize: number;
  gpuLayers: GpuLayers;
  capabilities: Record<string, number>;
}

export interface ResolvedConfiguration {
  enabled: boolean;
  models: LocalModelSpec[];
  gpu: GpuBackend;
  maxTokens: number;
  parallel: number;
  maxQueued: number;
  threads: number;
  timeoutMs: number;
  preload: boolean;
}

export const DEFAULT_CAPABILITIES: Record<string, number> = { chat: 0.3, summarize: 0.3, extract: 0.25 };

/** The model id a file gets when the configuration names none: its name without `.gguf`. */
export function modelIdFromPath(path: string): string {
  return basename(path).replace(/\.gguf$/i, '') || 'local';
}

/** Fills in defaults; relative paths are taken from the server's working directory. */
export function resolveConfiguration(config: LlamaCppConfiguration): ResolvedConfiguration {
  const contextSize = config.contextSize ?? 4096;
  const gpuLayers = config.gpuLayers ?? 'auto';
  const capabilities = config.capabilities ?? DEFAULT_CAPABILITIES;
  const models: LocalModelSpec[] = [];
  if (config.modelPath)
    models.push({ id: config.modelId ?? modelIdFromPath(config.modelPath), path: absolute(config.modelPath), contextSize, gpuLayers, capabilities });
  for (const entry of config.models ?? []) {
    models.push({
      id: entry.id,
      path: absolute(entry.path),
      contextSize: entry.contextSize ?? contextSize,
      gpuLayers: entry.gpuLayers ?? gpuLayers,
      capabilities: entry.capabilities ?? capabilities,
    });
  }
  return {
    enabled: config.enabled ?? false,
    models,
    gpu: config.gpu ?? 'auto',
    maxTokens: config.maxTokens ?? 1024,
    parallel: config.parallel ?? 1,
    maxQueued: config.maxQueued ?? 16,
    threads: config.threads ?? 0,
    timeoutMs: config.timeoutMs ?? 120_000,
    preload: config.preload ?? true,
  };
}

const absolute = (path: string) => (isAbsolute(path) ? path : resolve(path));
