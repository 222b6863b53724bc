// Character classes shared by the text skills. Code units above ASCII that are letters in the
// Latin, Greek, Cyrillic and CJK blocks count as word characters.

export function isAsciiLetter(c: i32): bool {
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x7a;
}

export function isDigitChar(c: i32): bool {
  return c >= 0x30 && c <= 0x39;
}

export function isSpace(c: i32): bool {
  return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d || c == 0x0b || c == 0x0c || c == 0xa0 || c == 0x2028 || c == 0x2029 || c == 0x3000;
}

export function isWordChar(c: i32): bool {
  if (c < 0x80) return isAsciiLetter(c) || isDigitChar(c) || c == 0x5f;
  if (c == 0xd7 || c == 0xf7) return false;
  if (c >= 0xc0 && c <= 0x24f) return true; // Latin-1 letters and Latin Extended
  if (c >= 0x370 && c <= 0x52f) return true; // Greek, Cyrillic
  if (c >= 0x3040 && c <= 0x9fff) return true; // kana, CJK
  if (c >= 0xac00 && c <= 0xd7af) return true; // Hangul
  if (c >= 0xd800 && c <= 0xdfff) return true; // astral characters: letters more often than not
  return false;
}
