import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { FakeTools } from '@aion/ext-accelerators/testing';
import { CpuDetector } from '../src/detector.js';
import { parseLscpu } from '../src/parse.js';

// lscpu from util-linux 2.38.1, `--json`, on an AMD EPYC (Flags shortened).
const LSCPU = JSON.stringify({
  lscpu: [
    { field: 'Architecture:', data: 'x86_64' },
    { field: 'CPU(s):', data: '2' },
    { field: 'Vendor ID:', data: 'AuthenticAMD' },
    { field: 'Model name:', data: 'AMD EPYC' },
    {
      field: 'Flags:',
      data: 'fpu vme de pse tsc msr mmx fxsr sse sse2 ht syscall pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 popcnt aes avx f16c avx2 bmi2 avx512f avx512dq avx512bw avx512vl avx_vnni avx512_bf16',
    },
  ],
});
// lscpu 2.39 nests rows under `children`; on Arm the SIMD flags are asimd and sve.
const LSCPU_NESTED = JSON.stringify({
  lscpu: [
    {
      field: 'Architecture:',
      data: 'aarch64',
      children: [
        {
          field: 'Model name:',
          data: 'Neoverse-V2',
          children: [{ field: 'Flags:', data: 'fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp sve sve2 i8mm bf16' }],
        },
      ],
    },
  ],
});

describe('accelerator-cpu', () => {
  it('reads model, architecture and SIMD features from lscpu --json', () => {
    const facts = parseLscpu(LSCPU);
    assert.equal(facts.model, 'AMD EPYC');
    assert.equal(facts.architecture, 'x86_64');
    assert.deepEqual(facts.features, [
      'mmx',
      'sse',
      'sse2',
      'sse3',
      'ssse3',
      'fma',
      'sse4_1',
      'sse4_2',
      'avx',
      'f16c',
      'avx2',
      'avx512f',
      'avx512dq',
      'avx512bw',
      'avx512vl',
      'avx_vnni',
      'avx512_bf16',
    ]);
    assert.deepEqual(parseLscpu(LSCPU_NESTED).features, ['asimd', 'fphp', 'asimdhp', 'sve', 'sve2', 'i8mm', 'bf16']);
    assert.throws(() => parseLscpu('Architecture: x86_64'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
  });

  describe('detecting', () => {
    let tools: FakeTools;
    beforeEach(() => (tools = new FakeTools()));
    afterEach(() => tools.remove());
    const detect = (timeoutMs = 5000) => tools.onPath(() => new CpuDetector({ lscpu: 'lscpu', timeoutMs }).detect());

    it('is always present: with lscpu, without it, and when it hangs', async () => {
      tools.printing('lscpu', LSCPU);
      const withTool = await detect();
      assert.equal(withTool.present, true);
      assert.equal(withTool.devices[0]!.cores, availableParallelism());
      assert.ok(withTool.devices[0]!.features!.includes('avx2'));
      assert.ok(withTool.devices[0]!.memoryTotalMiB! > 0);
      tools.remove();
      tools = new FakeTools();
      const without = await detect();
      assert.equal(without.present, true);
      assert.deepEqual(without.devices[0]!.features, []);
      tools.write('lscpu', 'exec /bin/sleep 600');
      const hanging = await detect(300);
      assert.equal(hanging.present, true);
    });
  });
});
