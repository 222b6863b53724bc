// slugify: turns a title into a URL slug: ASCII letters and digits, accents folded, words joined by a separator.
import { Value, Builder } from "../lib/json";
import { readRequest, requireString, respond, fail } from "../lib/io";
import { isAsciiLetter, isDigitChar } from "../lib/text";

// U+00C0..U+017F folded to ASCII: a letter, "*" for the letters in TWO_LETTERS, " " for a separator.
const LATIN = "aaaaaa*ceeeeiiiidnooooo ouuuuy**aaaaaa*ceeeeiiiidnooooo ouuuuy*yaaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiii**jjkkkllllllllllnnnnnnnnnoooooo**rrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

function twoLetters(c: i32): string {
  if (c == 0xc6 || c == 0xe6) return "ae";
  if (c == 0xde || c == 0xfe) return "th";
  if (c == 0xdf) return "ss";
  if (c == 0x132 || c == 0x133) return "ij";
  return "oe"; // U+0152, U+0153
}

const request = readRequest();
const text = requireString(request, "text");
const separator = request.getString("separator", "-");
const maxLength = <i32>request.getNumber("maxLength", 80);
const lowercase = request.getBool("lowercase", true);
if (separator.length > 3) fail("\"separator\" must be at most 3 characters");
if (maxLength < 1) fail("\"maxLength\" must be positive");

const words = new Array<string>();
let word = new Builder();
let wordLength = 0;

function flush(): void {
  if (wordLength > 0) words.push(word.toString());
  word = new Builder();
  wordLength = 0;
}

for (let i = 0; i < text.length; i++) {
  const c = text.charCodeAt(i);
  if (isAsciiLetter(c)) {
    word.add(String.fromCharCode(lowercase ? c | 0x20 : c));
    wordLength++;
  } else if (isDigitChar(c)) {
    word.add(String.fromCharCode(c));
    wordLength++;
  } else if (c == 0x27 || c == 0x2019) {
    // An apostrophe joins: "don't" becomes "dont".
  } else if (c >= 0xc0 && c <= 0x17f) {
    const folded = LATIN.charAt(c - 0xc0);
    if (folded == " ") flush();
    else {
      let letters = folded == "*" ? twoLetters(c) : folded;
      // Keep the case of an uppercase letter when lowercase is off; the table holds lowercase.
      if (!lowercase && text.charAt(i).toLowerCase() != text.charAt(i)) letters = letters.toUpperCase();
      word.add(letters);
      wordLength += letters.length;
    }
  } else if (c >= 0x300 && c <= 0x36f) {
    // A combining accent after its letter: dropped.
  } else flush();
}
flush();

// Whole words up to maxLength; a first word longer than that is cut.
const slug = new Builder();
let length = 0;
for (let i = 0; i < words.length; i++) {
  const extra = (length > 0 ? separator.length : 0) + words[i].length;
  if (length + extra > maxLength) {
    if (length == 0) {
      slug.add(words[i].substring(0, maxLength));
      length = maxLength;
    }
    break;
  }
  if (length > 0) slug.add(separator);
  slug.add(words[i]);
  length += extra;
}

respond(Value.object().set("slug", Value.string(slug.toString())));
