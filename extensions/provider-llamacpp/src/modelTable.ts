import type { LocalModelStatus } from './localModels.js';

const MIB = 1024 * 1024;

function size(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  return bytes >= 1024 * MIB ? `${(bytes / (1024 * MIB)).toFixed(1)} GiB` : `${(bytes / MIB).toFixed(1)} MiB`;
}

function where(model: LocalModelStatus): string {
  if (model.error) return `${model.state}: ${model.error.code}`;
  if (!model.placement) return model.state;
  const { backend, gpuLayers, totalLayers } = model.placement;
  return backend === 'cpu' || gpuLayers === 0 ? 'cpu' : `${backend} ${gpuLayers}/${totalLayers} layers`;
}

/** The terminal table of `aion models list`. */
export function formatModelTable(models: LocalModelStatus[], enabled: boolean): string {
  if (models.length === 0) return 'no local model is configured: set LOCAL_AI_MODEL_PATH to a GGUF file and LOCAL_AI_ENABLED=true';
  const rows = [['ID', 'SIZE', 'QUANT', 'CONTEXT', 'LOADED', 'PATH']];
  for (const m of models) rows.push([m.id, size(m.sizeBytes), m.quantization ?? '-', String(m.contextSize), where(m), m.path]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
  for (const m of models) if (m.error) lines.push(`${m.id}: ${m.error.message}`);
  if (!enabled) lines.push('the local model is off: set LOCAL_AI_ENABLED=true to serve it');
  return lines.join('\n');
}
