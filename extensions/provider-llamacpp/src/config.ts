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

/**
 * This extension's configuration section (`extensions["aion.provider-llamacpp"]`) as the kernel hands
 * it over: validated against the manifest's schema, which fills in every default (one home for them).
 */
export interface LlamaCppConfiguration {
  /** `LOCAL_AI_ENABLED`. */
  enabled: boolean;
  /** `LOCAL_AI_MODEL_PATH`. */
  modelPath?: string;
  modelId?: string;
  models?: LocalModelEntry[];
  gpu: GpuBackend;
  gpuLayers: GpuLayers;
  contextSize: number;
  maxTokens: number;
  parallel: number;
  maxQueued: number;
  threads: number;
  timeoutMs: number;
  preload: boolean;
  capabilities: Record<string, number>;
}

/** A configured model with every default filled in. */
export type LocalModelSpec = Required<LocalModelEntry>;

/** The configuration with `modelPath` and `models` as one list of models, each complete. */
export type ResolvedConfiguration = Omit<LlamaCppConfiguration, 'modelPath' | 'modelId' | 'models' | 'contextSize' | 'gpuLayers' | 'capabilities'> & {
  models: LocalModelSpec[];
};

/** The model id a file gets when the configuration names none: its name without `.gguf`. */
export function modelIdFromPath(path: string): string {
  return basename(path).replace(/\.gguf$/i, '') || 'local';
}

/** One list of models, each with the section's contextSize, gpuLayers and capabilities unless it sets its own; relative paths are taken from the server's working directory. */
export function resolveConfiguration(config: LlamaCppConfiguration): ResolvedConfiguration {
  const { modelPath, modelId, models: entries = [], contextSize, gpuLayers, capabilities, ...settings } = config;
  const listed = modelPath ? [{ id: modelId ?? modelIdFromPath(modelPath), path: modelPath }, ...entries] : entries;
  const models = listed.map((entry) => ({ contextSize, gpuLayers, capabilities, ...entry, path: absolute(entry.path) }));
  return { ...settings, models };
}

const absolute = (path: string) => (isAbsolute(path) ? path : resolve(path));
