/**
 * The benchmark's kernel, in its own process so the client's work does not share its event loop:
 * prints `{ url, dataDir }` once ready and stops when its stdin closes.
 */
import { startTestKernel, type TestKernelOptions } from '@aion/core';

const options = JSON.parse(process.argv[2]!) as TestKernelOptions;
const kernel = await startTestKernel(options);
process.stdout.write(`${JSON.stringify({ url: kernel.url, dataDir: kernel.dataDir })}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await kernel.stop();
  process.exit(0);
});
