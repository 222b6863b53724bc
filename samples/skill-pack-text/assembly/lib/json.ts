// A small JSON value, parser and serializer: AssemblyScript has no JSON in its standard library.

export const NULL: i32 = 0;
export const BOOL: i32 = 1;
export const NUMBER: i32 = 2;
export const STRING: i32 = 3;
export const ARRAY: i32 = 4;
export const OBJECT: i32 = 5;

const MAX_DEPTH: i32 = 256;

export class Value {
  kind: i32 = NULL;
  flag: bool = false;
  num: f64 = 0;
  str: string = "";
  items: Array<Value> = new Array<Value>();
  keys: Array<string> = new Array<string>();

  static null(): Value {
    return new Value();
  }

  static bool(b: bool): Value {
    const v = new Value();
    v.kind = BOOL;
    v.flag = b;
    return v;
  }

  static number(n: f64): Value {
    const v = new Value();
    v.kind = NUMBER;
    v.num = n;
    return v;
  }

  static string(s: string): Value {
    const v = new Value();
    v.kind = STRING;
    v.str = s;
    return v;
  }

  static array(): Value {
    const v = new Value();
    v.kind = ARRAY;
    return v;
  }

  static object(): Value {
    const v = new Value();
    v.kind = OBJECT;
    return v;
  }

  get isNull(): bool {
    return this.kind == NULL;
  }

  /** Appends to an array. */
  push(item: Value): Value {
    this.items.push(item);
    return this;
  }

  /** Sets an object member, keeping the first position of a key. */
  set(key: string, value: Value): Value {
    const i = this.keys.indexOf(key);
    if (i >= 0) this.items[i] = value;
    else {
      this.keys.push(key);
      this.items.push(value);
    }
    return this;
  }

  /** An object member, or null. */
  get(key: string): Value | null {
    if (this.kind != OBJECT) return null;
    const i = this.keys.indexOf(key);
    return i >= 0 ? this.items[i] : null;
  }

  getString(key: string, fallback: string): string {
    const v = this.get(key);
    return v != null && v.kind == STRING ? v.str : fallback;
  }

  getNumber(key: string, fallback: f64): f64 {
    const v = this.get(key);
    return v != null && v.kind == NUMBER ? v.num : fallback;
  }

  getBool(key: string, fallback: bool): bool {
    const v = this.get(key);
    return v != null && v.kind == BOOL ? v.flag : fallback;
  }

  get length(): i32 {
    return this.items.length;
  }

  toString(): string {
    const out = new Builder();
    write(out, this);
    return out.toString();
  }
}

/** Collects string parts and joins them once, instead of concatenating in a loop. */
export class Builder {
  parts: Array<string> = new Array<string>();

  add(s: string): Builder {
    this.parts.push(s);
    return this;
  }

  toString(): string {
    return this.parts.join("");
  }
}

export function quote(out: Builder, s: string): void {
  out.add("\"");
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
    if (i > start) out.add(s.substring(start, i));
    if (c == 0x22) out.add("\\\"");
    else if (c == 0x5c) out.add("\\\\");
    else if (c == 0x0a) out.add("\\n");
    else if (c == 0x0d) out.add("\\r");
    else if (c == 0x09) out.add("\\t");
    else out.add("\\u00" + (c < 0x10 ? "0" : "") + c.toString(16));
    start = i + 1;
  }
  if (start < s.length) out.add(s.substring(start));
  out.add("\"");
}

export function numberText(n: f64): string {
  if (!isFinite(n)) return "null";
  if (n == Math.floor(n) && Math.abs(n) < 9007199254740992.0) return (<i64>n).toString();
  return n.toString();
}

function write(out: Builder, v: Value): void {
  if (v.kind == NULL) out.add("null");
  else if (v.kind == BOOL) out.add(v.flag ? "true" : "false");
  else if (v.kind == NUMBER) out.add(numberText(v.num));
  else if (v.kind == STRING) quote(out, v.str);
  else if (v.kind == ARRAY) {
    out.add("[");
    for (let i = 0; i < v.items.length; i++) {
      if (i > 0) out.add(",");
      write(out, v.items[i]);
    }
    out.add("]");
  } else {
    out.add("{");
    for (let i = 0; i < v.keys.length; i++) {
      if (i > 0) out.add(",");
      quote(out, v.keys[i]);
      out.add(":");
      write(out, v.items[i]);
    }
    out.add("}");
  }
}

class Parser {
  pos: i32 = 0;
  error: string = "";

  constructor(public text: string) {}

  fail(message: string): Value | null {
    if (this.error.length == 0) this.error = message + " at position " + this.pos.toString();
    return null;
  }

  skipSpace(): void {
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  literal(word: string, value: Value): Value | null {
    if (this.text.substr(this.pos, word.length) != word) return this.fail("unexpected token");
    this.pos += word.length;
    return value;
  }

  value(depth: i32): Value | null {
    if (depth > MAX_DEPTH) return this.fail("nesting too deep");
    this.skipSpace();
    if (this.pos >= this.text.length) return this.fail("unexpected end");
    const c = this.text.charCodeAt(this.pos);
    if (c == 0x7b) return this.object(depth);
    if (c == 0x5b) return this.array(depth);
    if (c == 0x22) {
      const s = this.string();
      return s == null ? null : Value.string(s);
    }
    if (c == 0x74) return this.literal("true", Value.bool(true));
    if (c == 0x66) return this.literal("false", Value.bool(false));
    if (c == 0x6e) return this.literal("null", Value.null());
    return this.number();
  }

  number(): Value | null {
    const start = this.pos;
    const text = this.text;
    if (this.pos < text.length && text.charCodeAt(this.pos) == 0x2d) this.pos++;
    const digitsStart = this.pos;
    while (this.pos < text.length && isDigit(text.charCodeAt(this.pos))) this.pos++;
    if (this.pos == digitsStart) return this.fail("unexpected token");
    if (this.pos < text.length && text.charCodeAt(this.pos) == 0x2e) {
      this.pos++;
      const fraction = this.pos;
      while (this.pos < text.length && isDigit(text.charCodeAt(this.pos))) this.pos++;
      if (this.pos == fraction) return this.fail("bad number");
    }
    if (this.pos < text.length && (text.charCodeAt(this.pos) | 0x20) == 0x65) {
      this.pos++;
      if (this.pos < text.length && (text.charCodeAt(this.pos) == 0x2b || text.charCodeAt(this.pos) == 0x2d)) this.pos++;
      const exponent = this.pos;
      while (this.pos < text.length && isDigit(text.charCodeAt(this.pos))) this.pos++;
      if (this.pos == exponent) return this.fail("bad number");
    }
    return Value.number(parseFloat(text.substring(start, this.pos)));
  }

  string(): string | null {
    this.pos++; // opening quote
    const out = new Builder();
    let start = this.pos;
    const text = this.text;
    while (this.pos < text.length) {
      const c = text.charCodeAt(this.pos);
      if (c == 0x22) {
        out.add(text.substring(start, this.pos));
        this.pos++;
        return out.toString();
      }
      if (c < 0x20) {
        this.fail("control character in string");
        return null;
      }
      if (c != 0x5c) {
        this.pos++;
        continue;
      }
      out.add(text.substring(start, this.pos));
      this.pos++;
      if (this.pos >= text.length) break;
      const e = text.charCodeAt(this.pos);
      this.pos++;
      if (e == 0x22) out.add("\"");
      else if (e == 0x5c) out.add("\\");
      else if (e == 0x2f) out.add("/");
      else if (e == 0x62) out.add("\b");
      else if (e == 0x66) out.add("\f");
      else if (e == 0x6e) out.add("\n");
      else if (e == 0x72) out.add("\r");
      else if (e == 0x74) out.add("\t");
      else if (e == 0x75) {
        let code = 0;
        for (let k = 0; k < 4; k++) {
          const h = this.pos + k < text.length ? hexDigit(text.charCodeAt(this.pos + k)) : -1;
          if (h < 0) {
            this.fail("bad unicode escape");
            return null;
          }
          code = (code << 4) | h;
        }
        out.add(String.fromCharCode(code));
        this.pos += 4;
      } else {
        this.fail("bad escape");
        return null;
      }
      start = this.pos;
    }
    this.fail("unterminated string");
    return null;
  }

  array(depth: i32): Value | null {
    this.pos++;
    const result = Value.array();
    this.skipSpace();
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x5d) {
      this.pos++;
      return result;
    }
    while (true) {
      const item = this.value(depth + 1);
      if (item == null) return null;
      result.push(item);
      this.skipSpace();
      if (this.pos >= this.text.length) return this.fail("unexpected end");
      const c = this.text.charCodeAt(this.pos++);
      if (c == 0x5d) return result;
      if (c != 0x2c) return this.fail("expected , or ]");
    }
  }

  object(depth: i32): Value | null {
    this.pos++;
    const result = Value.object();
    this.skipSpace();
    if (this.pos < this.text.length && this.text.charCodeAt(this.pos) == 0x7d) {
      this.pos++;
      return result;
    }
    while (true) {
      this.skipSpace();
      if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x22) return this.fail("expected a key");
      const key = this.string();
      if (key == null) return null;
      this.skipSpace();
      if (this.pos >= this.text.length || this.text.charCodeAt(this.pos) != 0x3a) return this.fail("expected :");
      this.pos++;
      const item = this.value(depth + 1);
      if (item == null) return null;
      result.set(key, item);
      this.skipSpace();
      if (this.pos >= this.text.length) return this.fail("unexpected end");
      const c = this.text.charCodeAt(this.pos++);
      if (c == 0x7d) return result;
      if (c != 0x2c) return this.fail("expected , or }");
    }
  }
}

function hexDigit(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function isDigit(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

/** Why the last `parse` failed. */
export let parseError: string = "";

export function parse(text: string): Value | null {
  const parser = new Parser(text);
  const value = parser.value(0);
  if (value != null) {
    parser.skipSpace();
    if (parser.pos < text.length) parser.fail("unexpected data after the value");
  }
  parseError = parser.error;
  return parser.error.length > 0 ? null : value;
}
