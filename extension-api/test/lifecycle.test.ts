import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const api = fileURLToPath(new URL('../src/index.js', import.meta.url));

describe('untilStopSignal', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`resolves with ${signal} and leaves no listener behind`, async () => {
      const script = `import { untilStopSignal } from ${JSON.stringify(api)};
        const alive = setInterval(() => {}, 1000); // a server would keep the process running
        // Listening before saying ready: a signal sent on 'ready' must find the listener there.
        const stopped = untilStopSignal();
        console.log('ready');
        const got = await stopped;
        clearInterval(alive);
        console.log(got, process.listenerCount('SIGTERM') + process.listenerCount('SIGINT'));`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      while (!out.includes('ready')) {
        assert.equal(child.exitCode, null, `the script ended early: ${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill(signal);
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, 'the process ended normally, not killed by the signal');
      assert.equal(out.trim().split('\n').at(-1), `${signal} 0`);
    });
  }
});
