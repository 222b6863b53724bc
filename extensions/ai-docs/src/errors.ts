import { AionError } from '@aion/extension-api';
import { AiDocsErrorCodes, AiDocsErrorStatus } from './api.js';

/** An error of this extension, with its HTTP status. */
export function aiDocsError(code: keyof typeof AiDocsErrorCodes, message: string, details?: unknown): AionError {
  return new AionError(AiDocsErrorCodes[code], message, { status: AiDocsErrorStatus[code], details });
}
