import * as aion from '@aion/extension-api';
import type { AcceleratorsApi, GpuRequirement } from './api.js';
import { readConfig } from './config.js';
import type { AcceleratorDetector } from './kit/detection.js';
import { findDevice } from './placement.js';
import { gauges } from './readings.js';
import { AcceleratorRegistry } from './registry.js';
import { renderTable } from './table.js';

const HUB = 'hub';

export async function activate(ctx: aion.ExtensionContext): Promise<AcceleratorsApi> {
  const config = readConfig(ctx.configuration.get<Record<string, unknown>>());
  const registry = new AcceleratorRegistry({
    listEntries: () => aion.contributions.list('accelerators'),
    detector: (id) => aion.contributions.get<AcceleratorDetector>('accelerators', id) as Promise<AcceleratorDetector>,
    detectorTimeoutMs: config.detectorTimeoutMs,
    refreshIntervalMs: config.refreshIntervalMs,
    disabled: config.disabled,
    node: HUB,
    logger: ctx.logger,
  });
  registry.start();
  ctx.subscriptions.push({ dispose: () => registry.dispose() });

  const wantsRefresh = (value: string | string[] | undefined) => ['1', 'true'].includes(String(Array.isArray(value) ? value[0] : value));
  ctx.subscriptions.push(
    aion.http.handle('GET /v1/accelerators', async (req) => ({ body: wantsRefresh(req.query.refresh) ? await registry.refresh() : await registry.snapshot() })),
    aion.commands.register('accelerators.list', async (options: { json?: boolean } | undefined) => {
      const snapshot = await registry.snapshot();
      return options?.json ? JSON.stringify(snapshot, null, 2) : renderTable(snapshot);
    }),
  );

  return {
    list: () => registry.snapshot(),
    find: async (requirement: GpuRequirement | undefined) => findDevice(await registry.snapshot(), checkedRequirement(requirement)),
    readings: async () => gauges(await registry.snapshot()),
    refresh: () => registry.refresh(),
  };
}

/** A requirement from another extension: plain data of the documented shape, or BAD_REQUEST. */
function checkedRequirement(value: unknown): GpuRequirement {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new aion.AionError('BAD_REQUEST', 'find() takes { vendor?: string, memoryMiB?: number }.');
  const { vendor, memoryMiB, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest).filter((k) => k !== 'required');
  if (unknown.length) throw new aion.AionError('BAD_REQUEST', `find() does not know ${unknown.join(', ')}; it takes { vendor?, memoryMiB? }.`);
  if (vendor !== undefined && (typeof vendor !== 'string' || !/^[a-z0-9-]{1,32}$/.test(vendor)))
    throw new aion.AionError('BAD_REQUEST', 'vendor must be a vendor id such as nvidia, amd or intel.');
  if (memoryMiB !== undefined && (typeof memoryMiB !== 'number' || !Number.isFinite(memoryMiB) || memoryMiB < 0))
    throw new aion.AionError('BAD_REQUEST', 'memoryMiB must be a non-negative number of MiB.');
  return { ...(vendor !== undefined ? { vendor: vendor as string } : {}), ...(memoryMiB !== undefined ? { memoryMiB: memoryMiB as number } : {}) };
}

export function deactivate(): void {}
