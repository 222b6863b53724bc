import * as aion from '@aion/extension-api';
import { CpuDetector } from './detector.js';

export function activate(ctx: aion.ExtensionContext): void {
  const config = ctx.configuration.get<{ lscpu?: string; timeoutMs?: number }>() ?? {};
  const detector = new CpuDetector({ lscpu: config.lscpu ?? 'lscpu', timeoutMs: config.timeoutMs ?? 5000 });
  ctx.subscriptions.push(aion.contributions.register('accelerators', 'cpu', { detect: () => detector.detect() }));
}

export function deactivate(): void {}
