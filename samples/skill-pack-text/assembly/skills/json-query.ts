// json-query: reads a value out of JSON by a dotted path ("users.0.name", "users[0].name", "users.*.name").
import { Value, ARRAY, OBJECT } from "../lib/json";
import { readRequest, requireString, respond, fail } from "../lib/io";

const request = readRequest();
const path = requireString(request, "path");
const dataValue = request.get("data");
if (dataValue == null) fail("\"data\" is required");
const data = dataValue!;

// "a[0].b" and "a.0.b" are the same path; an empty path is the whole document.
function segments(path: string): Array<string> {
  const normalised = path.replaceAll("[", ".").replaceAll("]", "");
  const parts = normalised.split(".");
  const out = new Array<string>();
  for (let i = 0; i < parts.length; i++) if (parts[i].length > 0) out.push(parts[i]);
  return out;
}

function isIndex(s: string): bool {
  if (s.length == 0 || s.length > 9) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** Every value the remaining segments reach from `node`; `*` fans out over arrays and objects. */
function select(node: Value, parts: Array<string>, at: i32, out: Array<Value>): void {
  if (at == parts.length) {
    out.push(node);
    return;
  }
  const part = parts[at];
  if (part == "*") {
    if (node.kind == ARRAY || node.kind == OBJECT) for (let i = 0; i < node.items.length; i++) select(node.items[i], parts, at + 1, out);
    return;
  }
  if (node.kind == OBJECT) {
    const child = node.get(part);
    if (child != null) select(child, parts, at + 1, out);
  } else if (node.kind == ARRAY && isIndex(part)) {
    const index = I32.parseInt(part);
    if (index < node.items.length) select(node.items[index], parts, at + 1, out);
  } else if (node.kind == ARRAY && part.length > 1 && part.charCodeAt(0) == 0x2d && isIndex(part.substring(1))) {
    const index = node.items.length - I32.parseInt(part.substring(1));
    if (index >= 0) select(node.items[index], parts, at + 1, out);
  }
}

const parts = segments(path);
const found = new Array<Value>();
select(data, parts, 0, found);
const wildcard = parts.includes("*");

const result = Value.object().set("path", Value.string(parts.join("."))).set("found", Value.bool(found.length > 0));
if (wildcard) {
  const all = Value.array();
  for (let i = 0; i < found.length; i++) all.push(found[i]);
  result.set("value", all);
} else result.set("value", found.length > 0 ? found[0] : Value.null());
respond(result);
