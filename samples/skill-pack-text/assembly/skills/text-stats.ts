// text-stats: counts characters, words, lines, sentences and paragraphs, and the most frequent words.
import { Value } from "../lib/json";
import { readRequest, requireString, respond, fail } from "../lib/io";
import { isSpace, isWordChar } from "../lib/text";

const request = readRequest();
const text = requireString(request, "text");
const topN = <i32>request.getNumber("top", 5);
if (topN < 0 || topN > 100) fail("\"top\" must be between 0 and 100");

let characters = 0;
let words = 0;
let wordChars = 0;
let sentences = 0;
let paragraphs = 0;
let lines = text.length > 0 ? 1 : 0;
let inWord = false;
let wordStart = 0;
let sentencePending = false;
let paragraphOpen = false;
let blankLine = true;
const counts = new Map<string, i32>();

function endWord(end: i32): void {
  const word = text.substring(wordStart, end).toLowerCase();
  counts.set(word, counts.has(word) ? counts.get(word) + 1 : 1);
}

for (let i = 0; i < text.length; i++) {
  const c = text.charCodeAt(i);
  if (c < 0xdc00 || c > 0xdfff) characters++; // a low surrogate completes a character already counted
  // An apostrophe between letters stays inside the word (don't, l'été).
  const apostrophe = (c == 0x27 || c == 0x2019) && inWord && i + 1 < text.length && isWordChar(text.charCodeAt(i + 1));
  if (isWordChar(c) || apostrophe) {
    if (!inWord) {
      inWord = true;
      wordStart = i;
      words++;
      if (!paragraphOpen) {
        paragraphOpen = true;
        paragraphs++;
      }
    }
    if (!apostrophe && (c < 0xdc00 || c > 0xdfff)) wordChars++;
    sentencePending = true;
    blankLine = false;
    continue;
  }
  if (inWord) {
    inWord = false;
    endWord(i);
  }
  if ((c == 0x2e || c == 0x21 || c == 0x3f || c == 0x2026 || c == 0x3002) && sentencePending) {
    sentences++;
    sentencePending = false;
  }
  if (c == 0x0a) {
    lines++;
    if (blankLine) paragraphOpen = false;
    blankLine = true;
  } else if (!isSpace(c)) blankLine = false;
}
if (inWord) endWord(text.length);
if (sentencePending) sentences++;
if (text.length > 0 && text.charCodeAt(text.length - 1) == 0x0a) lines--;

// Most frequent first, then alphabetical.
const unique = counts.keys();
unique.sort((a: string, b: string): i32 => {
  const diff = counts.get(b) - counts.get(a);
  if (diff != 0) return diff;
  return a < b ? -1 : a > b ? 1 : 0;
});
const top = Value.array();
for (let i = 0; i < unique.length && i < topN; i++) {
  top.push(Value.object().set("word", Value.string(unique[i])).set("count", Value.number(<f64>counts.get(unique[i]))));
}

const average = words > 0 ? Math.round((<f64>wordChars / <f64>words) * 100) / 100 : 0;
respond(
  Value.object()
    .set("characters", Value.number(<f64>characters))
    .set("bytes", Value.number(<f64>String.UTF8.byteLength(text)))
    .set("words", Value.number(<f64>words))
    .set("uniqueWords", Value.number(<f64>unique.length))
    .set("lines", Value.number(<f64>lines))
    .set("sentences", Value.number(<f64>sentences))
    .set("paragraphs", Value.number(<f64>paragraphs))
    .set("averageWordLength", Value.number(average))
    .set("readingMinutes", Value.number(Math.ceil(<f64>words / 200)))
    .set("topWords", top),
);
