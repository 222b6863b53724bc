import { AionError, HttpStatusByCode } from '@aion/extension-api';
import { DeviceErrorCodes } from './contract.js';

const CODE = /^[A-Z][A-Z0-9_]{1,63}$/;
const MAX_MESSAGE = 300;

/**
 * An error that came from a device, as an HTTP client or a model may see it: a well-formed code,
 * one line of message without control characters, file paths or stack, and no details.
 */
export function sanitizeDeviceError(err: unknown, device: string): AionError {
  const raw = err as { code?: unknown; message?: unknown };
  const code = typeof raw?.code === 'string' && CODE.test(raw.code) ? raw.code : 'DEVICE_ERROR';
  const firstLine = String(raw?.message ?? 'the device reported an error').split('\n')[0]!;
  const message = firstLine
    .replace(/[\u0000-\u001f\u007f]/g, ' ')
    .replace(/(?:[A-Za-z]:)?(?:[\\/][\w.@-]+){2,}/g, '<path>')
    .slice(0, MAX_MESSAGE);
  // Our own transport codes keep their status; anything else from a device is the device's failure (502) unless it is a client error.
  const known = (Object.values(DeviceErrorCodes) as string[]).includes(code) || code in HttpStatusByCode;
  const status = known ? (HttpStatusByCode[code] ?? statusOfDeviceCode(code)) : 502;
  return new AionError(code, `device ${device}: ${message}`, { status });
}

export function statusOfDeviceCode(code: string): number {
  switch (code) {
    case DeviceErrorCodes.DEVICE_UNAVAILABLE:
      return 503;
    case DeviceErrorCodes.DEVICE_TIMEOUT:
      return 504;
    case DeviceErrorCodes.DEVICE_BUSY:
      return 429;
    case DeviceErrorCodes.DEVICE_NOT_FOUND:
      return 404;
    case DeviceErrorCodes.FRAME_TOO_LARGE:
      return 413;
    case DeviceErrorCodes.DEVICE_NAME_TAKEN:
      return 409;
    case DeviceErrorCodes.DEVICE_NAME_MISMATCH:
      return 403;
    case DeviceErrorCodes.DEVICE_TOKEN_INVALID:
      return 401;
    default:
      return 502;
  }
}
