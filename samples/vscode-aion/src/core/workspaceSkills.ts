/**
 * The read-only skills a workspace offers the hub as a device: search the text of its files, read a
 * file, list a file's symbols. Every path is judged after resolving symlinks, so nothing outside the
 * workspace folder is ever read, however the path is spelled.
 */
import { open, readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { DeviceSkill } from '@aion/client';

export type WorkspaceSkillId = 'workspace.search' | 'workspace.read' | 'workspace.symbols';
export const WORKSPACE_SKILL_IDS: WorkspaceSkillId[] = ['workspace.search', 'workspace.read', 'workspace.symbols'];

export const WORKSPACE_SKILLS: Record<WorkspaceSkillId, DeviceSkill> = {
  'workspace.search': {
    id: 'workspace.search',
    title: 'Search the workspace',
    description: 'Lines of the workspace’s text files that contain the query (case-insensitive), with their file and line number.',
    tags: ['workspace', 'search', 'read-only'],
    inputSchema: {
      type: 'object',
      properties: { query: { type: 'string', minLength: 1, maxLength: 200 }, maxResults: { type: 'integer', minimum: 1, maximum: 200 } },
      required: ['query'],
      additionalProperties: false,
    },
  },
  'workspace.read': {
    id: 'workspace.read',
    title: 'Read a file of the workspace',
    description: 'The text of one file inside the workspace, whole or a range of lines.',
    tags: ['workspace', 'read-only'],
    inputSchema: {
      type: 'object',
      properties: {
        path: { type: 'string', minLength: 1, maxLength: 1024 },
        startLine: { type: 'integer', minimum: 1 },
        endLine: { type: 'integer', minimum: 1 },
      },
      required: ['path'],
      additionalProperties: false,
    },
  },
  'workspace.symbols': {
    id: 'workspace.symbols',
    title: 'List the symbols of a file',
    description: 'Functions, classes, interfaces, types and top-level constants declared in a file, with their line.',
    tags: ['workspace', 'code', 'read-only'],
    inputSchema: { type: 'object', properties: { path: { type: 'string', minLength: 1, maxLength: 1024 } }, required: ['path'], additionalProperties: false },
  },
};

/** An error whose `code` the hub passes back to its caller. */
export class WorkspaceError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const SKIPPED_DIRS = new Set(['.git', 'node_modules', 'dist', 'out', 'build', '.vscode-test']);
const SYMBOL_PATTERNS: Array<[RegExp, string]> = [
  [/^\s*(?:export\s+)?(?:default\s+)?(?:async\s+)?function\*?\s+([A-Za-z_$][\w$]*)/, 'function'],
  [/^\s*(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+([A-Za-z_$][\w$]*)/, 'class'],
  [/^\s*(?:export\s+)?interface\s+([A-Za-z_$][\w$]*)/, 'interface'],
  [/^\s*(?:export\s+)?type\s+([A-Za-z_$][\w$]*)\s*[=<]/, 'type'],
  [/^\s*(?:export\s+)?enum\s+([A-Za-z_$][\w$]*)/, 'enum'],
  [/^(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)/, 'constant'],
  [/^\s*(?:async\s+)?def\s+([A-Za-z_]\w*)/, 'function'],
  [/^\s*class\s+([A-Za-z_]\w*)\s*[(:]/, 'class'],
];

export interface WorkspaceLimits {
  /** Larger files are not read (FILE_TOO_LARGE) nor searched. */
  maxFileBytes: number;
  /** Files a search looks at, at most. */
  maxFiles: number;
}

export class WorkspaceSkills {
  private readonly limits: WorkspaceLimits;
  private rootReal?: string;

  constructor(
    readonly root: string,
    private readonly enabled: readonly WorkspaceSkillId[],
    limits: Partial<WorkspaceLimits> = {},
  ) {
    this.limits = { maxFileBytes: 512 * 1024, maxFiles: 5000, ...limits };
  }

  /** The skills the user enabled, as the device announces them. */
  list(): DeviceSkill[] {
    return this.enabled.map((id) => WORKSPACE_SKILLS[id]);
  }

  async execute(skill: string, args: unknown, signal?: AbortSignal): Promise<unknown> {
    if (!this.enabled.includes(skill as WorkspaceSkillId)) throw new WorkspaceError('DEVICE_NOT_FOUND', `this workspace does not expose ${skill}`);
    const input = (args ?? {}) as Record<string, unknown>;
    if (skill === 'workspace.search') return this.search(String(input.query ?? ''), Number(input.maxResults ?? 50), signal);
    if (skill === 'workspace.read') return this.read(String(input.path ?? ''), input.startLine as number | undefined, input.endLine as number | undefined);
    return this.symbols(String(input.path ?? ''));
  }

  /** The real path of `path` (relative to the workspace), refused when it lies outside it. */
  async resolveInside(path: string): Promise<string> {
    if (!path || path.includes('\0')) throw new WorkspaceError('VALIDATION_FAILED', 'name a file of the workspace');
    if (isAbsolute(path)) throw new WorkspaceError('PATH_OUTSIDE_WORKSPACE', `${path} is absolute: name a file relative to the workspace folder`);
    const root = await this.realRoot();
    const wanted = resolve(root, path);
    if (!isInside(root, wanted)) throw new WorkspaceError('PATH_OUTSIDE_WORKSPACE', `${path} is outside the workspace`);
    let real: string;
    try {
      real = await realpath(wanted);
    } catch {
      throw new WorkspaceError('FILE_NOT_FOUND', `${path} does not exist in the workspace`);
    }
    // A symlink inside the workspace that leads out of it is outside too.
    if (!isInside(root, real)) throw new WorkspaceError('PATH_OUTSIDE_WORKSPACE', `${path} leads outside the workspace`);
    return real;
  }

  private async realRoot(): Promise<string> {
    this.rootReal ??= await realpath(this.root);
    return this.rootReal;
  }

  private async readText(real: string, shown: string): Promise<string> {
    const info = await stat(real);
    if (!info.isFile()) throw new WorkspaceError('FILE_NOT_FOUND', `${shown} is not a file`);
    if (info.size > this.limits.maxFileBytes)
      throw new WorkspaceError('FILE_TOO_LARGE', `${shown} is ${info.size} bytes; the limit is ${this.limits.maxFileBytes}`);
    const handle = await open(real, 'r');
    try {
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  }

  private async read(
    path: string,
    startLine?: number,
    endLine?: number,
  ): Promise<{ path: string; text: string; startLine: number; endLine: number; totalLines: number }> {
    const real = await this.resolveInside(path);
    const lines = (await this.readText(real, path)).split('\n');
    const from = Math.max(1, startLine ?? 1);
    const to = Math.min(lines.length, endLine ?? lines.length);
    if (to < from) throw new WorkspaceError('VALIDATION_FAILED', `endLine ${endLine} is before startLine ${startLine}`);
    return { path, text: lines.slice(from - 1, to).join('\n'), startLine: from, endLine: to, totalLines: lines.length };
  }

  private async symbols(path: string): Promise<{ path: string; symbols: Array<{ name: string; kind: string; line: number }> }> {
    const real = await this.resolveInside(path);
    const symbols: Array<{ name: string; kind: string; line: number }> = [];
    (await this.readText(real, path)).split('\n').forEach((text, i) => {
      for (const [pattern, kind] of SYMBOL_PATTERNS) {
        const match = pattern.exec(text);
        if (match) {
          symbols.push({ name: match[1]!, kind, line: i + 1 });
          break;
        }
      }
    });
    return { path, symbols };
  }

  private async search(
    query: string,
    maxResults: number,
    signal?: AbortSignal,
  ): Promise<{ query: string; matches: Array<{ path: string; line: number; text: string }>; truncated: boolean }> {
    const needle = query.toLowerCase();
    if (!needle) throw new WorkspaceError('VALIDATION_FAILED', 'give a query to search for');
    const root = await this.realRoot();
    const matches: Array<{ path: string; line: number; text: string }> = [];
    let files = 0;
    const walk = async (dir: string): Promise<boolean> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        if (signal?.aborted) throw new WorkspaceError('CANCELLED', 'the search was cancelled');
        const full = join(dir, entry.name);
        // Symlinks are not followed: a search never leaves the folder.
        if (entry.isDirectory()) {
          if (!SKIPPED_DIRS.has(entry.name) && !(await walk(full))) return false;
        } else if (entry.isFile()) {
          if (++files > this.limits.maxFiles) return false;
          const info = await stat(full);
          if (info.size > this.limits.maxFileBytes) continue;
          const text = await this.readText(full, full);
          if (text.includes('\0')) continue;
          const lines = text.split('\n');
          for (let i = 0; i < lines.length; i++) {
            if (lines[i]!.toLowerCase().includes(needle)) {
              matches.push({ path: relative(root, full).split(sep).join('/'), line: i + 1, text: lines[i]!.trim().slice(0, 300) });
              if (matches.length >= maxResults) return false;
            }
          }
        }
      }
      return true;
    };
    const complete = await walk(root);
    return { query, matches, truncated: !complete };
  }
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}
