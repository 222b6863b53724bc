// line-diff: compares two texts line by line (longest common subsequence) and answers the changes and a unified diff.
import { Value, Builder } from "../lib/json";
import { readRequest, requireString, respond, fail } from "../lib/io";

const MAX_CELLS: i64 = 4_000_000;
const EQUAL: i32 = 0;
const DELETE: i32 = 1;
const INSERT: i32 = 2;

const request = readRequest();
const before = splitLines(requireString(request, "before"));
const after = splitLines(requireString(request, "after"));
const context = <i32>request.getNumber("context", 3);
if (context < 0 || context > 1000) fail("\"context\" must be between 0 and 1000");

function splitLines(text: string): Array<string> {
  if (text.length == 0) return new Array<string>();
  const lines = text.split("\n");
  if (text.charCodeAt(text.length - 1) == 0x0a) lines.pop();
  return lines;
}

class Op {
  constructor(public kind: i32, public text: string, public oldLine: i32, public newLine: i32) {}
}

// Lines shared at both ends need no table; only the middle is compared.
let prefix = 0;
while (prefix < before.length && prefix < after.length && before[prefix] == after[prefix]) prefix++;
let suffix = 0;
while (suffix < before.length - prefix && suffix < after.length - prefix && before[before.length - 1 - suffix] == after[after.length - 1 - suffix]) suffix++;
const n = before.length - prefix - suffix;
const m = after.length - prefix - suffix;
if (<i64>(n + 1) * <i64>(m + 1) > MAX_CELLS) fail("the texts differ in too many lines to compare (" + n.toString() + " × " + m.toString() + ")");

// lcs[i * (m + 1) + j]: length of the longest common subsequence of the middles from i and j on.
const width = m + 1;
const lcs = new Uint16Array((n + 1) * width);
for (let i = n - 1; i >= 0; i--) {
  for (let j = m - 1; j >= 0; j--) {
    lcs[i * width + j] = before[prefix + i] == after[prefix + j] ? lcs[(i + 1) * width + j + 1] + 1 : max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
  }
}

const ops = new Array<Op>();
for (let k = 0; k < prefix; k++) ops.push(new Op(EQUAL, before[k], k + 1, k + 1));
let i = 0;
let j = 0;
while (i < n || j < m) {
  if (i < n && j < m && before[prefix + i] == after[prefix + j]) {
    ops.push(new Op(EQUAL, before[prefix + i], prefix + i + 1, prefix + j + 1));
    i++;
    j++;
  } else if (j >= m || (i < n && lcs[(i + 1) * width + j] >= lcs[i * width + j + 1])) {
    ops.push(new Op(DELETE, before[prefix + i], prefix + i + 1, 0));
    i++;
  } else {
    ops.push(new Op(INSERT, after[prefix + j], 0, prefix + j + 1));
    j++;
  }
}
for (let k = 0; k < suffix; k++) ops.push(new Op(EQUAL, before[prefix + n + k], prefix + n + k + 1, prefix + m + k + 1));

let added = 0;
let removed = 0;
const changes = Value.array();
for (let k = 0; k < ops.length; k++) {
  const op = ops[k];
  if (op.kind == EQUAL) continue;
  const change = Value.object().set("op", Value.string(op.kind == INSERT ? "insert" : "delete"));
  if (op.kind == DELETE) {
    removed++;
    change.set("oldLine", Value.number(<f64>op.oldLine));
  } else {
    added++;
    change.set("newLine", Value.number(<f64>op.newLine));
  }
  changes.push(change.set("text", Value.string(op.text)));
}

// Unified diff: hunks of changes with `context` lines around them, merged when they touch.
const unified = new Builder();
if (added + removed > 0) unified.add("--- before\n+++ after\n");
let k = 0;
while (k < ops.length) {
  if (ops[k].kind == EQUAL) {
    k++;
    continue;
  }
  let start = max(0, k - context);
  let end = k;
  while (end < ops.length) {
    if (ops[end].kind != EQUAL) {
      end++;
      continue;
    }
    let run = end;
    while (run < ops.length && ops[run].kind == EQUAL) run++;
    if (run == ops.length || run - end > 2 * context) {
      end = min(ops.length, end + context);
      break;
    }
    end = run;
  }
  let oldStart = 0;
  let newStart = 0;
  let oldCount = 0;
  let newCount = 0;
  // Line numbers before the hunk, for hunks that only add or only remove.
  let oldBefore = 0;
  let newBefore = 0;
  for (let x = 0; x < start; x++) {
    if (ops[x].kind != INSERT) oldBefore++;
    if (ops[x].kind != DELETE) newBefore++;
  }
  const body = new Builder();
  for (let x = start; x < end; x++) {
    const op = ops[x];
    if (op.kind != INSERT) {
      oldCount++;
      if (oldStart == 0) oldStart = op.oldLine;
    }
    if (op.kind != DELETE) {
      newCount++;
      if (newStart == 0) newStart = op.newLine;
    }
    body.add(op.kind == EQUAL ? " " : op.kind == DELETE ? "-" : "+").add(op.text).add("\n");
  }
  if (oldCount == 0) oldStart = oldBefore;
  if (newCount == 0) newStart = newBefore;
  unified.add("@@ -" + oldStart.toString() + "," + oldCount.toString() + " +" + newStart.toString() + "," + newCount.toString() + " @@\n");
  unified.add(body.toString());
  k = end;
}

respond(
  Value.object()
    .set("identical", Value.bool(added + removed == 0))
    .set("added", Value.number(<f64>added))
    .set("removed", Value.number(<f64>removed))
    .set("unchanged", Value.number(<f64>(ops.length - added - removed)))
    .set("changes", changes)
    .set("unified", Value.string(unified.toString())),
);
