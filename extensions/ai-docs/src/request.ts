import type { AiDocsRequest, LineRange } from './api.js';
import { aiDocsError } from './errors.js';

const invalid = (message: string) => aiDocsError('INVALID_AI_REQUEST', message);
const PRIVACY = new Set(['local-only', 'allow-api', 'hybrid']);

/** Reads `{ project_id, path, range?, symbol?, privacy? }`; every problem is INVALID_AI_REQUEST naming the field. */
export function checkRequest(body: unknown): AiDocsRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('send a JSON object { "project_id": "…", "path": "src/file.ts" }');
  const b = body as Record<string, unknown>;
  const known = new Set(['project_id', 'path', 'range', 'symbol', 'privacy']);
  const unknown = Object.keys(b).filter((k) => !known.has(k));
  if (unknown.length) throw invalid(`unknown field ${unknown.join(', ')}; the fields are project_id, path, range, symbol, privacy`);
  if (typeof b.project_id !== 'string' || b.project_id === '' || b.project_id.length > 64)
    throw invalid('project_id is required: the id POST /v1/projects answered');
  if (typeof b.path !== 'string' || b.path === '' || b.path.length > 1024) throw invalid('path is required: a file inside the project, e.g. src/index.ts');
  const request: AiDocsRequest = { project_id: b.project_id, path: b.path };
  if (b.range !== undefined) request.range = checkRange(b.range);
  if (b.symbol !== undefined) {
    if (typeof b.symbol !== 'string' || b.symbol.trim() === '' || b.symbol.length > 200 || /[\u0000-\u001f]/.test(b.symbol))
      throw invalid('symbol is an identifier of the file, at most 200 characters');
    request.symbol = b.symbol.trim();
  }
  if (b.privacy !== undefined) {
    if (typeof b.privacy !== 'string' || !PRIVACY.has(b.privacy)) throw invalid('privacy is local-only, allow-api or hybrid');
    request.privacy = b.privacy as AiDocsRequest['privacy'];
  }
  return request;
}

function checkRange(value: unknown): LineRange {
  const r = value as Record<string, unknown> | null;
  const line = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
  if (!r || typeof r !== 'object' || !line(r.start_line) || !line(r.end_line) || (r.end_line as number) < (r.start_line as number)) {
    throw invalid('range is { "start_line": n, "end_line": m } with 1 ≤ n ≤ m (lines of the file, inclusive)');
  }
  return { start_line: r.start_line as number, end_line: r.end_line as number };
}
