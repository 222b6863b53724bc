import { PreviewErrorCodes } from './api.js';
import { previewError } from './errors.js';

export type ByteRange = { start: number; end: number };

/**
 * A `Range: bytes=…` header against an object of `size` bytes: undefined for the whole object (no
 * header, another unit, several ranges or bad syntax: RFC 9110 lets a server ignore those), a range,
 * or RANGE_NOT_SATISFIABLE (416 with `Content-Range: bytes *\/size`).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (!Number.isSafeInteger(start) || start >= size) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number) {
  return previewError(PreviewErrorCodes.RANGE_NOT_SATISFIABLE, `the requested range is outside the bundle (${size} bytes)`, {
    headers: { 'Content-Range': `bytes */${size}` },
  });
}
