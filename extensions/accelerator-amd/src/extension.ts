import * as aion from '@aion/extension-api';
import { AmdDetector } from './detector.js';

export function activate(ctx: aion.ExtensionContext): void {
  const config = ctx.configuration.get<{ command?: string; timeoutMs?: number }>() ?? {};
  const detector = new AmdDetector({ command: config.command ?? 'rocm-smi', timeoutMs: config.timeoutMs ?? 5000 });
  ctx.subscriptions.push(aion.contributions.register('accelerators', 'amd', { detect: () => detector.detect() }));
}

export function deactivate(): void {}
