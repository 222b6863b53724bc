// Reading the request from stdin and writing the answer to stdout, as the sandbox expects.
import { parse, parseError, Value } from "./json";

export function readText(): string {
  const chunk = new ArrayBuffer(16 * 1024);
  const bytes = new Array<ArrayBuffer>();
  let total = 0;
  while (true) {
    const n = process.stdin.read(chunk);
    if (n <= 0) break;
    bytes.push(chunk.slice(0, n));
    total += n;
  }
  // Decode once, so multi-byte characters split across reads stay whole.
  const all = new Uint8Array(total);
  let offset = 0;
  for (let i = 0; i < bytes.length; i++) {
    all.set(Uint8Array.wrap(bytes[i]), offset);
    offset += bytes[i].byteLength;
  }
  return String.UTF8.decode(all.buffer);
}

/** The request object; exits with code 1 when stdin is not a JSON object. */
export function readRequest(): Value {
  const value = parse(readText());
  if (value == null) fail("the input is not JSON: " + parseError);
  if (value!.kind != 5) fail("the input must be a JSON object");
  return value!;
}

export function respond(value: Value): void {
  process.stdout.write(value.toString());
}

/** Writes the reason to stderr and exits with code 1; the sandbox reports SKILL_FAILED with it. */
export function fail(message: string): void {
  process.stderr.write(message + "\n");
  process.exit(1);
}

/** A required string member of the request. */
export function requireString(request: Value, key: string): string {
  const v = request.get(key);
  if (v == null || v.kind != 3) fail("\"" + key + "\" must be a string");
  return v!.str;
}
