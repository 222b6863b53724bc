// hash: SHA-256, FNV-1a 32 and FNV-1a 64 of the UTF-8 bytes of a text, as lowercase hex.
import { Value } from "../lib/json";
import { readRequest, requireString, respond, fail } from "../lib/io";

const K: StaticArray<u32> = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

function hex32(v: u32): string {
  return v.toString(16).padStart(8, "0");
}

function sha256(data: Uint8Array): string {
  const h: StaticArray<u32> = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  // Message, a 0x80 byte, zero padding, then the bit length as a 64-bit big-endian number.
  const length = data.length;
  const padded = new Uint8Array(((length + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[length] = 0x80;
  const bits = <u64>length * 8;
  for (let i = 0; i < 8; i++) padded[padded.length - 1 - i] = <u8>(bits >> (<u64>i * 8));
  const w = new StaticArray<u32>(64);
  for (let block = 0; block < padded.length; block += 64) {
    for (let t = 0; t < 16; t++) {
      const o = block + t * 4;
      w[t] = (<u32>padded[o] << 24) | (<u32>padded[o + 1] << 16) | (<u32>padded[o + 2] << 8) | <u32>padded[o + 3];
    }
    for (let t = 16; t < 64; t++) {
      const s0 = rotr<u32>(w[t - 15], 7) ^ rotr<u32>(w[t - 15], 18) ^ (w[t - 15] >>> 3);
      const s1 = rotr<u32>(w[t - 2], 17) ^ rotr<u32>(w[t - 2], 19) ^ (w[t - 2] >>> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    let a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let t = 0; t < 64; t++) {
      const S1 = rotr<u32>(e, 6) ^ rotr<u32>(e, 11) ^ rotr<u32>(e, 25);
      const ch = (e & f) ^ (~e & g);
      const t1 = hh + S1 + ch + K[t] + w[t];
      const S0 = rotr<u32>(a, 2) ^ rotr<u32>(a, 13) ^ rotr<u32>(a, 22);
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = S0 + maj;
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  let out = "";
  for (let i = 0; i < 8; i++) out += hex32(h[i]);
  return out;
}

function fnv1a32(data: Uint8Array): string {
  let hash: u32 = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) {
    hash ^= <u32>data[i];
    hash *= 0x01000193;
  }
  return hex32(hash);
}

function fnv1a64(data: Uint8Array): string {
  let hash: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < data.length; i++) {
    hash ^= <u64>data[i];
    hash *= 0x100000001b3;
  }
  return hash.toString(16).padStart(16, "0");
}

const request = readRequest();
const text = requireString(request, "text");
const algorithm = request.getString("algorithm", "sha256");
const data = Uint8Array.wrap(String.UTF8.encode(text));

let digest = "";
if (algorithm == "sha256") digest = sha256(data);
else if (algorithm == "fnv1a32") digest = fnv1a32(data);
else if (algorithm == "fnv1a64") digest = fnv1a64(data);
else fail("\"algorithm\" must be sha256, fnv1a32 or fnv1a64");

respond(Value.object().set("algorithm", Value.string(algorithm)).set("hex", Value.string(digest)).set("bytes", Value.number(<f64>data.length)));
