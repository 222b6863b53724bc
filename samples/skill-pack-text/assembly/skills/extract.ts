// extract: finds e-mail addresses, URLs, numbers, hashtags and mentions in text, without regular expressions.
import { Value } from "../lib/json";
import { readRequest, requireString, respond, fail } from "../lib/io";
import { isAsciiLetter, isDigitChar, isSpace, isWordChar } from "../lib/text";

const KINDS = ["emails", "urls", "numbers", "hashtags", "mentions"];

const request = readRequest();
const text = requireString(request, "text");
const unique = request.getBool("unique", true);
const wanted = new Set<string>();
const kindsValue = request.get("kinds");
if (kindsValue == null) for (let k = 0; k < KINDS.length; k++) wanted.add(KINDS[k]);
else {
  const kinds = kindsValue!;
  if (kinds.kind != 4) fail("\"kinds\" must be an array");
  for (let n = 0; n < kinds.items.length; n++) {
    const k = kinds.items[n];
    if (k.kind != 3 || !KINDS.includes(k.str)) fail("unknown kind; use " + KINDS.join(", "));
    wanted.add(k.str);
  }
}

function isLocalChar(c: i32): bool {
  return isAsciiLetter(c) || isDigitChar(c) || c == 0x2e || c == 0x5f || c == 0x25 || c == 0x2b || c == 0x2d;
}

function isDomainChar(c: i32): bool {
  return isAsciiLetter(c) || isDigitChar(c) || c == 0x2e || c == 0x2d;
}

function isTagChar(c: i32): bool {
  return isWordChar(c);
}

class Found {
  list: Value = Value.array();
  seen: Set<string> = new Set<string>();

  add(item: string, value: Value): void {
    if (unique && this.seen.has(item)) return;
    this.seen.add(item);
    this.list.push(value);
  }
}

const emails = new Found();
const urls = new Found();
const numbers = new Found();
const hashtags = new Found();
const mentions = new Found();

function at(i: i32): i32 {
  return i >= 0 && i < text.length ? text.charCodeAt(i) : 0;
}

function startsWithAt(i: i32, prefix: string): bool {
  return text.substr(i, prefix.length).toLowerCase() == prefix;
}

let i = 0;
while (i < text.length) {
  const c = text.charCodeAt(i);

  if ((c == 0x68 || c == 0x48) && !isWordChar(at(i - 1)) && (startsWithAt(i, "http://") || startsWithAt(i, "https://"))) {
    let end = i;
    let open = 0;
    while (end < text.length) {
      const d = text.charCodeAt(end);
      if (isSpace(d) || d == 0x3c || d == 0x3e || d == 0x22 || d == 0x27 || d == 0x60) break;
      if (d == 0x28) open++;
      if (d == 0x29) {
        if (open == 0) break;
        open--;
      }
      end++;
    }
    // Sentence punctuation after a URL is not part of it.
    while (end > i) {
      const d = text.charCodeAt(end - 1);
      if (d == 0x2e || d == 0x2c || d == 0x3b || d == 0x3a || d == 0x21 || d == 0x3f) end--;
      else break;
    }
    const url = text.substring(i, end);
    if (url.indexOf("://") + 3 < url.length && wanted.has("urls")) urls.add(url, Value.string(url));
    i = end;
    continue;
  }

  if (c == 0x40) {
    let start = i;
    while (start > 0 && isLocalChar(text.charCodeAt(start - 1))) start--;
    while (start < i && text.charCodeAt(start) == 0x2e) start++;
    let end = i + 1;
    while (end < text.length && isDomainChar(text.charCodeAt(end))) end++;
    while (end > i + 1 && (text.charCodeAt(end - 1) == 0x2e || text.charCodeAt(end - 1) == 0x2d)) end--;
    const domain = text.substring(i + 1, end);
    const dot = domain.lastIndexOf(".");
    let tldOk = dot > 0 && domain.length - dot - 1 >= 2;
    for (let k = dot + 1; tldOk && k < domain.length; k++) if (!isAsciiLetter(domain.charCodeAt(k))) tldOk = false;
    if (start < i && tldOk && domain.indexOf("..") < 0) {
      if (wanted.has("emails")) {
        const email = text.substring(start, end);
        emails.add(email.toLowerCase(), Value.string(email));
      }
      i = end;
      continue;
    }
    if (start == i && !isWordChar(at(i - 1))) {
      let nameEnd = i + 1;
      while (nameEnd < text.length && isTagChar(text.charCodeAt(nameEnd))) nameEnd++;
      if (nameEnd > i + 1) {
        if (wanted.has("mentions")) mentions.add(text.substring(i, nameEnd), Value.string(text.substring(i, nameEnd)));
        i = nameEnd;
        continue;
      }
    }
    i++;
    continue;
  }

  if (c == 0x23 && !isWordChar(at(i - 1)) && at(i - 1) != 0x26) {
    let end = i + 1;
    while (end < text.length && isTagChar(text.charCodeAt(end))) end++;
    // A tag needs at least one letter: "#1" is a number reference, not a hashtag.
    let letter = false;
    for (let k = i + 1; k < end; k++) if (!isDigitChar(text.charCodeAt(k))) letter = true;
    if (letter) {
      if (wanted.has("hashtags")) hashtags.add(text.substring(i, end).toLowerCase(), Value.string(text.substring(i, end)));
      i = end;
      continue;
    }
  }

  if (isDigitChar(c) && !isWordChar(at(i - 1)) && at(i - 1) != 0x2e) {
    let start = i;
    if (at(i - 1) == 0x2d && !isWordChar(at(i - 2))) start = i - 1;
    let end = i;
    while (end < text.length && isDigitChar(text.charCodeAt(end))) end++;
    if (at(end) == 0x2e && isDigitChar(at(end + 1))) {
      end++;
      while (end < text.length && isDigitChar(text.charCodeAt(end))) end++;
    }
    if (!isWordChar(at(end))) {
      const literal = text.substring(start, end);
      if (wanted.has("numbers")) numbers.add(literal, Value.number(parseFloat(literal)));
    }
    i = end;
    continue;
  }
  // Skip the rest of a word so digits and markers inside it are not taken apart.
  if (isWordChar(c)) {
    while (i < text.length && isWordChar(text.charCodeAt(i))) i++;
    continue;
  }
  i++;
}

const result = Value.object();
if (wanted.has("emails")) result.set("emails", emails.list);
if (wanted.has("urls")) result.set("urls", urls.list);
if (wanted.has("numbers")) result.set("numbers", numbers.list);
if (wanted.has("hashtags")) result.set("hashtags", hashtags.list);
if (wanted.has("mentions")) result.set("mentions", mentions.list);
respond(result);
