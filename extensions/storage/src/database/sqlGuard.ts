import { AionError } from '@aion/extension-api';
import { StorageErrorCodes, type Dialect } from '../api.js';

/**
 * Confines an extension's SQL to its namespace by a strict check of the tokens of each statement:
 *
 * - one statement of an allowed kind (SELECT, INSERT, UPDATE, DELETE, WITH, VALUES, REPLACE, and
 *   CREATE/ALTER/DROP of tables, indexes, views, SQLite triggers and PostgreSQL sequences);
 * - every object it creates, alters or drops is named with the caller's prefix (`aion_sessions__x`),
 *   and every identifier that contains `__` starts with that prefix, so another extension's tables
 *   (all of which carry their own prefix) cannot be named;
 * - catalogs and functions that reach outside (sqlite_*, pragma_*, pg_*, information_schema,
 *   query_to_xml, dblink, set_config, …) are refused, as are SELECT … INTO, U& escapes and
 *   numbered or named parameters.
 *
 * It is a guard against mistakes and casual misuse written as a tokenizer, not a SQL parser: the
 * README says what it does not cover. Parameters are written `?`; for PostgreSQL they become `$n`.
 */

export interface CheckedSql {
  /** The statement to send to the driver (placeholders rewritten for PostgreSQL). */
  text: string;
  paramCount: number;
  /** The first keyword, upper-cased: SELECT, INSERT, CREATE… */
  kind: string;
}

type TokenType = 'word' | 'quoted' | 'string' | 'number' | 'param' | 'punct';
interface Token {
  type: TokenType;
  /** Words upper-cased; identifiers and strings as their content. */
  value: string;
  start: number;
  end: number;
}

const STATEMENTS = new Set(['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'WITH', 'VALUES', 'REPLACE', 'CREATE', 'ALTER', 'DROP']);
const CREATE_MODIFIERS = new Set(['OR', 'REPLACE', 'TEMP', 'TEMPORARY', 'UNIQUE', 'UNLOGGED', 'VIRTUAL']);
const OBJECT_KINDS: Record<Dialect, Set<string>> = {
  sqlite: new Set(['TABLE', 'INDEX', 'VIEW', 'TRIGGER']),
  postgres: new Set(['TABLE', 'INDEX', 'VIEW', 'SEQUENCE']),
};
const DENIED_PREFIXES = ['pg_', 'sqlite_', 'pragma_', 'lo_', 'dblink'];
const DENIED_NAMES = new Set([
  'information_schema',
  'query_to_xml',
  'query_to_xmlschema',
  'query_to_xml_and_xmlschema',
  'cursor_to_xml',
  'cursor_to_xmlschema',
  'table_to_xml',
  'table_to_xmlschema',
  'table_to_xml_and_xmlschema',
  'schema_to_xml',
  'schema_to_xmlschema',
  'schema_to_xml_and_xmlschema',
  'database_to_xml',
  'database_to_xmlschema',
  'database_to_xml_and_xmlschema',
  'ts_stat',
  'ts_rewrite',
  'set_config',
  'current_setting',
  'load_extension',
  'readfile',
  'writefile',
  'fts3_tokenizer',
  'edit',
]);
const IDENTIFIER_LIKE = /^[a-z_][a-z0-9_$]*$/;

function reject(message: string): never {
  throw new AionError(StorageErrorCodes.SQL_REJECTED, `SQL rejected: ${message}`);
}

function isWordStart(c: string): boolean {
  return /[A-Za-z_]/.test(c) || c.charCodeAt(0) > 127;
}

function isWordPart(c: string): boolean {
  return /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) > 127;
}

export function tokenize(sql: string, dialect: Dialect): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = sql.length;
  const quotedUntil = (open: number, close: string): { content: string; end: number } => {
    let content = '';
    let j = open + 1;
    for (;;) {
      if (j >= n) reject('an unterminated quote');
      const c = sql[j]!;
      if (c === close) {
        if (sql[j + 1] === close && close !== ']') {
          content += close;
          j += 2;
          continue;
        }
        return { content, end: j + 1 };
      }
      content += c;
      j++;
    }
  };
  while (i < n) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? n : nl + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      // PostgreSQL nests block comments; SQLite does not. Counting nesting is right for PostgreSQL and
      // stricter than needed for SQLite (an unbalanced `/*` inside a comment is refused).
      let depth = 1;
      let j = i + 2;
      while (depth > 0) {
        if (j >= n) reject('an unterminated comment');
        if (sql[j] === '*' && sql[j + 1] === '/') {
          depth--;
          j += 2;
        } else if (sql[j] === '/' && sql[j + 1] === '*') {
          if (dialect === 'postgres') depth++;
          j += 2;
        } else j++;
      }
      i = j;
      continue;
    }
    if (c === "'") {
      const { content, end } = quotedUntil(i, "'");
      tokens.push({ type: 'string', value: content, start: i, end });
      i = end;
      continue;
    }
    if (c === '"' || c === '`' || (c === '[' && dialect === 'sqlite')) {
      const { content, end } = quotedUntil(i, c === '[' ? ']' : c);
      tokens.push({ type: 'quoted', value: content, start: i, end });
      i = end;
      continue;
    }
    if (c === '$') {
      if (dialect === 'postgres') {
        const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 65));
        if (tag) {
          const close = sql.indexOf(tag[0], i + tag[0].length);
          if (close < 0) reject('an unterminated dollar-quoted string');
          tokens.push({ type: 'string', value: sql.slice(i + tag[0].length, close), start: i, end: close + tag[0].length });
          i = close + tag[0].length;
          continue;
        }
      }
      reject('use ? for parameters ($ parameters are not supported)');
    }
    if (c === '?') {
      if (/[0-9]/.test(sql[i + 1] ?? '')) reject('use plain ? for parameters (numbered parameters are not supported)');
      tokens.push({ type: 'param', value: '?', start: i, end: i + 1 });
      i++;
      continue;
    }
    if ((c === ':' || c === '@') && dialect === 'sqlite' && isWordStart(sql[i + 1] ?? '')) reject('use ? for parameters (named parameters are not supported)');
    if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordPart(sql[j]!)) j++;
      const word = sql.slice(i, j);
      const upper = word.toUpperCase();
      if (upper === 'U' && sql[j] === '&' && (sql[j + 1] === "'" || sql[j + 1] === '"')) reject('U& escapes are not supported');
      if (upper === 'E' && sql[j] === "'" && dialect === 'postgres') {
        // An escape string: a backslash escapes the next character.
        let k = j + 1;
        let content = '';
        for (;;) {
          if (k >= n) reject('an unterminated quote');
          const d = sql[k]!;
          if (d === '\\') {
            content += sql.slice(k, k + 2);
            k += 2;
            continue;
          }
          if (d === "'") {
            if (sql[k + 1] === "'") {
              content += "'";
              k += 2;
              continue;
            }
            break;
          }
          content += d;
          k++;
        }
        tokens.push({ type: 'string', value: content, start: i, end: k + 1 });
        i = k + 1;
        continue;
      }
      tokens.push({ type: 'word', value: upper, start: i, end: j });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      let j = i + 1;
      while (j < n && /[0-9A-Za-z_.]/.test(sql[j]!)) j++;
      tokens.push({ type: 'number', value: sql.slice(i, j), start: i, end: j });
      i = j;
      continue;
    }
    tokens.push({ type: 'punct', value: c, start: i, end: i + 1 });
    i++;
  }
  return tokens;
}

/** The name an identifier token stands for, lower-cased (unquoted identifiers fold in both databases). */
function identifierOf(token: Token | undefined): string | undefined {
  if (!token) return undefined;
  if (token.type === 'word' || token.type === 'quoted') return token.value.toLowerCase();
  return undefined;
}

export class SqlGuard {
  private readonly cache = new Map<string, CheckedSql>();

  constructor(
    readonly dialect: Dialect,
    /** `aion_sessions__` */
    readonly prefix: string,
  ) {}

  check(sql: string): CheckedSql {
    const cached = this.cache.get(sql);
    if (cached) return cached;
    const checked = this.doCheck(sql);
    if (this.cache.size >= 2_000) this.cache.clear();
    this.cache.set(sql, checked);
    return checked;
  }

  private ownName(token: Token | undefined, what: string): void {
    const name = identifierOf(token);
    if (!name) reject(`expected the name of the ${what}`);
    if (!name.startsWith(this.prefix) || name.length === this.prefix.length) reject(`the ${what} "${name}" must be named ${this.prefix}<name>`);
  }

  private doCheck(sql: string): CheckedSql {
    if (typeof sql !== 'string' || sql.trim() === '') reject('the statement is empty');
    const tokens = tokenize(sql, this.dialect);
    while (tokens.length > 0 && tokens[tokens.length - 1]!.type === 'punct' && tokens[tokens.length - 1]!.value === ';') tokens.pop();
    if (tokens.length === 0) reject('the statement is empty');
    const first = tokens[0]!;
    if (first.type !== 'word' || !STATEMENTS.has(first.value)) {
      reject(
        `${first.type === 'word' ? first.value : 'this'} statements are not allowed (allowed: ${[...STATEMENTS].join(', ')}; transactions go through transaction())`,
      );
    }
    // A SQLite trigger body holds statements of its own; the driver still refuses a second statement.
    const trigger = first.value === 'CREATE' && tokens.some((t, i) => i < 4 && t.type === 'word' && t.value === 'TRIGGER');
    let paramCount = 0;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t.type === 'punct' && t.value === ';' && !trigger) reject('one statement per call');
      if (t.type === 'param') paramCount++;
      if (t.type === 'word' && t.value === 'INTO') {
        const before = tokens[i - 1];
        if (before?.type !== 'word' || !['INSERT', 'REPLACE', 'IGNORE', 'ABORT', 'FAIL', 'ROLLBACK'].includes(before.value))
          reject('INTO is only allowed in INSERT INTO');
      }
      const name = identifierOf(t);
      if (name !== undefined) this.checkIdentifier(name);
      else if (t.type === 'string' && this.dialect === 'sqlite') this.checkString(t.value);
    }
    if (first.value === 'CREATE') this.checkCreate(tokens);
    else if (first.value === 'ALTER') this.checkAlter(tokens);
    else if (first.value === 'DROP') this.checkDrop(tokens);
    let text = sql;
    if (this.dialect === 'postgres' && paramCount > 0) {
      let out = '';
      let last = 0;
      let k = 0;
      for (const t of tokens) {
        if (t.type !== 'param') continue;
        out += sql.slice(last, t.start) + `$${++k}`;
        last = t.end;
      }
      text = out + sql.slice(last);
    }
    return { text, paramCount, kind: first.value };
  }

  private checkIdentifier(name: string): void {
    if (name.includes('__') && !name.startsWith(this.prefix)) reject(`"${name}" is outside this extension's namespace (${this.prefix}*)`);
    if (DENIED_NAMES.has(name) || DENIED_PREFIXES.some((p) => name.startsWith(p))) reject(`"${name}" is not available to extensions`);
  }

  /** SQLite reads a single-quoted string as an identifier where only an identifier fits (`FROM 'x'`). */
  private checkString(content: string): void {
    const value = content.trim().toLowerCase();
    if (!IDENTIFIER_LIKE.test(value)) return;
    this.checkIdentifier(value);
  }

  private checkCreate(tokens: Token[]): void {
    let i = 1;
    while (tokens[i]?.type === 'word' && CREATE_MODIFIERS.has(tokens[i]!.value)) i++;
    const kind = tokens[i]?.type === 'word' ? tokens[i]!.value : '';
    if (!OBJECT_KINDS[this.dialect].has(kind)) reject(`CREATE ${kind || '…'} is not allowed (allowed: ${[...OBJECT_KINDS[this.dialect]].join(', ')})`);
    i++;
    if (kind === 'INDEX' && tokens[i]?.value === 'CONCURRENTLY') i++;
    if (tokens[i]?.value === 'IF' && tokens[i + 1]?.value === 'NOT' && tokens[i + 2]?.value === 'EXISTS') i += 3;
    // PostgreSQL names an unnamed index after its (prefixed) table.
    if (kind === 'INDEX' && tokens[i]?.type === 'word' && tokens[i]!.value === 'ON') return;
    if (tokens[i + 1]?.type === 'punct' && tokens[i + 1]!.value === '.') reject('schema-qualified names are not allowed');
    this.ownName(tokens[i], kind.toLowerCase());
  }

  private checkAlter(tokens: Token[]): void {
    const kind = tokens[1]?.type === 'word' ? tokens[1]!.value : '';
    if (!['TABLE', 'INDEX', 'SEQUENCE', 'VIEW'].includes(kind)) reject(`ALTER ${kind || '…'} is not allowed`);
    let i = 2;
    if (tokens[i]?.value === 'IF' && tokens[i + 1]?.value === 'EXISTS') i += 2;
    if (tokens[i]?.value === 'ONLY') i++;
    if (tokens[i + 1]?.type === 'punct' && tokens[i + 1]!.value === '.') reject('schema-qualified names are not allowed');
    this.ownName(tokens[i], kind.toLowerCase());
    for (let j = i + 1; j < tokens.length; j++) {
      const t = tokens[j]!;
      if (t.type === 'word' && ['SCHEMA', 'OWNER', 'TABLESPACE'].includes(t.value)) reject(`ALTER … ${t.value} is not allowed`);
      if (t.type === 'word' && t.value === 'RENAME' && tokens[j + 1]?.value === 'TO') this.ownName(tokens[j + 2], kind.toLowerCase());
    }
  }

  private checkDrop(tokens: Token[]): void {
    const kind = tokens[1]?.type === 'word' ? tokens[1]!.value : '';
    if (!OBJECT_KINDS[this.dialect].has(kind)) reject(`DROP ${kind || '…'} is not allowed`);
    let i = 2;
    if (tokens[i]?.value === 'IF' && tokens[i + 1]?.value === 'EXISTS') i += 2;
    for (;;) {
      if (tokens[i + 1]?.type === 'punct' && tokens[i + 1]!.value === '.') reject('schema-qualified names are not allowed');
      this.ownName(tokens[i], kind.toLowerCase());
      if (tokens[i + 1]?.type === 'punct' && tokens[i + 1]!.value === ',') i += 2;
      else break;
    }
  }
}

/** `aion.sessions` → `aion_sessions`: the namespace every table name of that extension starts with. */
export function namespaceOf(extensionId: string): string {
  return extensionId
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}
