import { AionError } from '@aion/extension-api';
import { PreviewErrorStatus } from './api.js';

/** An AionError carrying this extension's HTTP status for its code. */
export function previewError(code: string, message: string, options: { headers?: Record<string, string>; details?: unknown; cause?: unknown } = {}): AionError {
  return new AionError(code, message, { ...options, status: PreviewErrorStatus[code] });
}
