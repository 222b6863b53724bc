import * as aion from '@aion/extension-api';
import { NvidiaDetector } from './detector.js';

export function activate(ctx: aion.ExtensionContext): void {
  const config = ctx.configuration.get<{ command?: string; timeoutMs?: number }>() ?? {};
  const detector = new NvidiaDetector({ command: config.command ?? 'nvidia-smi', timeoutMs: config.timeoutMs ?? 5000 });
  ctx.subscriptions.push(aion.contributions.register('accelerators', 'nvidia', { detect: () => detector.detect() }));
}

export function deactivate(): void {}
