import { FakeTools } from '../src/testing.js';
import { runTool, type AcceleratorDetector } from '../src/kit/index.js';

/** Detector run time per vendor, with the vendor tool missing and with a fixture tool on PATH; baseline: spawning /bin/true. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);

type DetectorModule = Record<string, new (options: Record<string, unknown>) => AcceleratorDetector>;
const load = (pkg: string) => import(pkg) as Promise<DetectorModule>;

const fixtures: Record<string, Record<string, string>> = {
  nvidia: {
    'nvidia-smi': `case "$1" in\n  --query-gpu=*) echo '0, NVIDIA H200, GPU-01060625-fc54-8566-0829-91dbf3a104a7, 143771, 0, 143156, 0, 35, 580.159.04, 9.0' ;;\n  --version) printf 'NVIDIA-SMI version  : 580.159.04\\nCUDA Version        : 13.0\\n' ;;\nesac`,
  },
  amd: {
    'rocm-smi': `echo '{"card0": {"Card Series": "AMD Instinct MI210", "VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "10960896", "GPU use (%)": "3"}, "system": {"Driver version": "6.3.6"}}'`,
  },
  intel: {
    'xpu-smi': `if [ "$2" = "-d" ]; then echo '{"device_id": 0, "device_name": "Intel(R) Data Center GPU Max 1550", "memory_physical_size_byte": "137438953472", "memory_free_size_byte": "134217728000"}'; else echo '{"device_list": [{"device_id": 0, "device_name": "Intel(R) Data Center GPU Max 1550", "device_type": "GPU"}]}'; fi`,
  },
  cpu: { lscpu: `echo '{"lscpu": [{"field": "Model name:", "data": "AMD EPYC"}, {"field": "Flags:", "data": "sse sse2 avx avx2"}]}'` },
};

const detectors: Array<{ vendor: string; make: () => Promise<AcceleratorDetector> }> = [
  { vendor: 'nvidia', make: async () => new (await load('@aion/ext-accelerator-nvidia')).NvidiaDetector!({ command: 'nvidia-smi', timeoutMs: 5000 }) },
  { vendor: 'amd', make: async () => new (await load('@aion/ext-accelerator-amd')).AmdDetector!({ command: 'rocm-smi', timeoutMs: 5000 }) },
  {
    vendor: 'intel',
    make: async () => new (await load('@aion/ext-accelerator-intel')).IntelDetector!({ xpuSmi: 'xpu-smi', syclLs: 'sycl-ls', timeoutMs: 5000 }),
  },
  { vendor: 'cpu', make: async () => new (await load('@aion/ext-accelerator-cpu')).CpuDetector!({ lscpu: 'lscpu', timeoutMs: 5000 }) },
];

async function median(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const fmt = (ms: number) => `${ms.toFixed(2).padStart(8)} ms`;

async function main(): Promise<void> {
  const empty = new FakeTools();
  const baseline = await median(() => runTool('/bin/true', [], { timeoutMs: 5000 }));
  console.log(`accelerator detectors, median of ${ROUNDS} runs (2-core shared machine: read ratios, not absolutes)`);
  console.log(`baseline: spawn /bin/true through runTool ${fmt(baseline)}`);
  console.log('tool missing: one detector read again and again (a refresh); fixture tool: a fresh detector per run (a first reading)');
  console.log(`${'vendor'.padEnd(8)} ${'tool missing'.padStart(12)} ${'fixture tool'.padStart(12)}  fixture / baseline`);
  for (const { vendor, make } of detectors) {
    const missing = await empty.onPath(async () => {
      const detector = await make();
      return median(() => detector.detect());
    });
    const tools = new FakeTools();
    for (const [name, script] of Object.entries(fixtures[vendor]!)) tools.write(name, script);
    // A fresh detector per run, so first-reading work (nvidia's CUDA version, lscpu) is counted.
    const present = await tools.onPath(async () => median(async () => (await make()).detect()));
    tools.remove();
    console.log(`${vendor.padEnd(8)} ${fmt(missing)} ${fmt(present)}  ${(present / baseline).toFixed(1)}x`);
  }
  empty.remove();
}

await main();
