/**
 * What path confinement costs: `resolveFile`'s read (path checks, realpath, O_NOFOLLOW open, fstat,
 * capped read) against a plain `fs.readFile` of the same files, in one process, same run.
 *
 *   npm run bench            (node dist/bench/run.js [--files 200] [--rounds 20])
 */
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readProjectFile } from '../src/files.js';

const { values } = parseArgs({ options: { files: { type: 'string', default: '200' }, rounds: { type: 'string', default: '20' } } });
const files = Number(values.files);
const rounds = Number(values.rounds);

const root = realpathSync(mkdtempSync(join(tmpdir(), 'aion-projects-bench-')));
const paths: string[] = [];
for (let i = 0; i < files; i++) {
  const rel = `src/dir${i % 10}/file${i}.ts`;
  mkdirSync(join(root, `src/dir${i % 10}`), { recursive: true });
  writeFileSync(join(root, rel), `export const value${i} = ${i};\n`.repeat(100));
  paths.push(rel);
}

interface Series {
  name: string;
  read: (rel: string) => Promise<unknown>;
  times: number[];
  seconds: number;
}

const series: Series[] = [
  { name: 'fs.readFile (baseline)', read: (rel) => readFile(join(root, rel), 'utf8'), times: [], seconds: 0 },
  { name: 'readProjectFile (confined)', read: (rel) => readProjectFile(root, rel, { maxBytes: 1 << 20, encoding: 'utf8' }), times: [], seconds: 0 },
];
// Warm the page cache and the JIT, then alternate the two per round so load on a shared machine hits both alike.
for (const s of series) for (const p of paths) await s.read(p);
for (let r = 0; r < rounds; r++) {
  for (const s of r % 2 === 0 ? series : [...series].reverse()) {
    const start = process.hrtime.bigint();
    for (const p of paths) {
      const t = process.hrtime.bigint();
      await s.read(p);
      s.times.push(Number(process.hrtime.bigint() - t) / 1000);
    }
    s.seconds += Number(process.hrtime.bigint() - start) / 1e9;
  }
}
const summary = series.map((s) => {
  const sorted = [...s.times].sort((a, b) => a - b);
  const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]!.toFixed(1);
  return { name: s.name, perSecond: Math.round(s.times.length / s.seconds), p50: q(0.5), p99: q(0.99) };
});
const [baseline, confined] = summary as [(typeof summary)[0], (typeof summary)[0]];
rmSync(root, { recursive: true, force: true });

console.log(`${files} files of ~3 KB, ${rounds} rounds`);
console.log('| read | reads/s | p50 µs | p99 µs |');
console.log('|---|---|---|---|');
for (const r of summary) console.log(`| ${r.name} | ${r.perSecond} | ${r.p50} | ${r.p99} |`);
console.log(`confined / baseline throughput: ${(confined.perSecond / baseline.perSecond).toFixed(2)}`);
