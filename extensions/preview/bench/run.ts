/**
 * A `static` preview build of a 1,000-file project through a real kernel over HTTP: end-to-end seconds
 * (POST /v1/preview/build until status success) and the share spent zipping, beside baselines from the
 * same run on the same files: `cp -r` of the folder and the system's `zip -qr`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PreviewStatus } from '../src/api.js';
import { finalStatus, previewToken, registerProject, startBuild, startPreviewKernel } from '../test/helpers.js';

const FILES = Number(process.env.BENCH_FILES ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const timed = (fn: () => void) => {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
};

const k = await startPreviewKernel();
try {
  const site = join(k.projectsRoot, 'site');
  for (let i = 0; i < FILES; i++) {
    const dir = join(site, 'assets', `d${i % 20}`);
    mkdirSync(dir, { recursive: true });
    // Text of a few KB, as pages and scripts are: compressible, not trivially.
    writeFileSync(
      join(dir, `f${i}.js`),
      `// file ${i}\n${Array.from({ length: 60 }, (_, j) => `export const v${j} = ${(i * 7919 + j * 104729) % 1000003};`).join('\n')}\n`,
    );
  }
  writeFileSync(join(site, 'index.html'), '<h1>bench</h1>');
  const id = await registerProject(k, k.alice.access_token, site, 'bench');
  const token = await previewToken(k, k.alice.access_token, id, 'web');

  const endToEnd: number[] = [];
  const zipShare: number[] = [];
  const zipMs: number[] = [];
  let last: PreviewStatus | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    last = await finalStatus(k, k.alice.access_token, await startBuild(k, token));
    if (last.status !== 'success') throw new Error(`build failed: ${JSON.stringify(last.error)}`);
    endToEnd.push(performance.now() - started);
    zipMs.push(last.timings!.zip_ms!);
    zipShare.push(last.timings!.zip_ms! / last.timings!.total_ms!);
  }

  const scratch = join(k.kernel.dataDir, 'baseline');
  const copyMs: number[] = [];
  const zipCliMs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    rmSync(scratch, { recursive: true, force: true });
    copyMs.push(timed(() => execFileSync('cp', ['-r', site, scratch])));
    zipCliMs.push(timed(() => execFileSync('zip', ['-qr', join(k.kernel.dataDir, `baseline-${round}.zip`), '.'], { cwd: site })));
  }

  const t = last!.timings!;
  console.log(`static preview build, ${FILES + 1} files, ${ROUNDS} rounds (median)`);
  console.log(`  end to end (POST build → status success over HTTP): ${(median(endToEnd) / 1000).toFixed(2)} s`);
  console.log(`  zipping (yazl): ${median(zipMs).toFixed(0)} ms = ${(median(zipShare) * 100).toFixed(1)} % of the build`);
  console.log(
    `  last build by stage (ms): checkout ${t.checkout_ms}, dependencies ${t.dependencies_ms}, build ${t.build_ms}, zip ${t.zip_ms}, upload ${t.upload_ms}, total ${t.total_ms}`,
  );
  console.log(`  bundle: ${last!.bundle!.files} artifacts, ${(last!.bundle!.size / 1024).toFixed(0)} KiB`);
  console.log(`baseline, same files, same run: cp -r ${median(copyMs).toFixed(0)} ms, zip -qr ${median(zipCliMs).toFixed(0)} ms`);
  console.log(`  yazl / zip CLI: ${(median(zipMs) / median(zipCliMs)).toFixed(2)}×`);
} finally {
  await k.stop();
}
