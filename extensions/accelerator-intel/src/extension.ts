import * as aion from '@aion/extension-api';
import { IntelDetector } from './detector.js';

export function activate(ctx: aion.ExtensionContext): void {
  const config = ctx.configuration.get<{ xpuSmi?: string; syclLs?: string; timeoutMs?: number }>() ?? {};
  const detector = new IntelDetector({ xpuSmi: config.xpuSmi ?? 'xpu-smi', syclLs: config.syclLs ?? 'sycl-ls', timeoutMs: config.timeoutMs ?? 5000 });
  ctx.subscriptions.push(aion.contributions.register('accelerators', 'intel', { detect: () => detector.detect() }));
}

export function deactivate(): void {}
