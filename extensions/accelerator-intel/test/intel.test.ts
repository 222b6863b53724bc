import assert from 'node:assert/strict';
import { FakeTools } from '@aion/ext-accelerators/testing';
import { IntelDetector } from '../src/detector.js';
import { parseDeviceDetails, parseDiscovery, parseSyclLs } from '../src/parse.js';

// xpu-smi 1.2.x `discovery -j` on a Data Center GPU Max 1550 machine.
const DISCOVERY = JSON.stringify(
  {
    device_list: [
      {
        device_function_type: 'physical',
        device_id: 0,
        device_name: 'Intel(R) Data Center GPU Max 1550',
        device_type: 'GPU',
        drm_device: '/dev/dri/card1',
        pci_bdf_address: '0000:29:00.0',
        pci_device_id: '0xbd5',
        uuid: '00000000-0000-0029-0000-002f0bd58086',
        vendor_name: 'Intel(R) Corporation',
      },
      {
        device_function_type: 'physical',
        device_id: 1,
        device_name: 'Intel(R) Data Center GPU Max 1550',
        device_type: 'GPU',
        drm_device: '/dev/dri/card2',
        pci_bdf_address: '0000:3a:00.0',
        pci_device_id: '0xbd5',
        uuid: '00000000-0000-003a-0000-002f0bd58086',
        vendor_name: 'Intel(R) Corporation',
      },
    ],
  },
  null,
  4,
);
// xpu-smi 1.2.x `discovery -d 0 -j`: details, sizes as strings.
const DETAILS = JSON.stringify(
  {
    device_id: 0,
    device_name: 'Intel(R) Data Center GPU Max 1550',
    device_type: 'GPU',
    driver_version: 'I915_23.10.32_PSB_230929.48',
    memory_physical_size_byte: '137438953472',
    memory_free_size_byte: '134217728000',
    uuid: '00000000-0000-0029-0000-002f0bd58086',
  },
  null,
  4,
);
// sycl-ls of oneAPI 2023.2, and of oneAPI 2025.0.
const SYCL_2023 = `[opencl:acc:0] Intel(R) FPGA Emulation Platform for OpenCL(TM), Intel(R) FPGA Emulation Device 1.2 [2023.16.7.0.21_160000]
[opencl:cpu:1] Intel(R) OpenCL, Intel(R) Xeon(R) Platinum 8480+ 3.0 [2023.16.7.0.21_160000]
[opencl:gpu:2] Intel(R) OpenCL Graphics, Intel(R) Data Center GPU Max 1550 3.0 [23.17.26241.33]
[ext_oneapi_level_zero:gpu:0] Intel(R) Level-Zero, Intel(R) Data Center GPU Max 1550 1.3 [1.3.26241]`;
const SYCL_2025 = `[level_zero:gpu][level_zero:0] Intel(R) oneAPI Unified Runtime over Level-Zero, Intel(R) Arc(TM) A770 Graphics 12.55.8 [1.3.29735+27]
[opencl:cpu][opencl:0] Intel(R) OpenCL, 13th Gen Intel(R) Core(TM) i9-13900K OpenCL 3.0 (Build 0) [2024.18.12.0.05_160000]
[opencl:gpu][opencl:1] Intel(R) OpenCL Graphics, Intel(R) Arc(TM) A770 Graphics OpenCL 3.0 NEO  [24.35.30872.22]`;

describe('accelerator-intel', () => {
  it('reads xpu-smi discovery and device details', () => {
    const listed = parseDiscovery(DISCOVERY);
    assert.deepEqual(
      listed.map((d) => [d.index, d.name, d.uuid]),
      [
        [0, 'Intel(R) Data Center GPU Max 1550', '00000000-0000-0029-0000-002f0bd58086'],
        [1, 'Intel(R) Data Center GPU Max 1550', '00000000-0000-003a-0000-002f0bd58086'],
      ],
    );
    const detailed = parseDeviceDetails(DETAILS, listed[0]!);
    assert.equal(detailed.memoryTotalMiB, 131072);
    assert.equal(detailed.memoryFreeMiB, 128000);
    assert.equal(detailed.memoryUsedMiB, 3072);
    assert.equal(detailed.driverVersion, 'I915_23.10.32_PSB_230929.48');
  });

  it('reads both sycl-ls formats, Level Zero GPUs only', () => {
    assert.deepEqual(parseSyclLs(SYCL_2023), [
      { index: 0, name: 'Intel(R) Data Center GPU Max 1550', driverVersion: '1.3.26241', runtime: { name: 'Level Zero' } },
    ]);
    assert.deepEqual(parseSyclLs(SYCL_2025), [
      { index: 0, name: 'Intel(R) Arc(TM) A770 Graphics', driverVersion: '1.3.29735+27', runtime: { name: 'Level Zero' } },
    ]);
  });

  it('refuses malformed output with ACCELERATOR_OUTPUT_INVALID', () => {
    assert.throws(() => parseDiscovery('Device ID: 0'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
    assert.throws(() => parseDiscovery('{"devices": []}'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
    assert.throws(() => parseDiscovery('{"device_list": [{"device_id": "zero", "device_name": "x"}]}'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
    assert.throws(() => parseSyclLs('[level_zero:gpu][level_zero:0] garbage'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
  });

  describe('running the tools from PATH', () => {
    let tools: FakeTools;
    beforeEach(() => (tools = new FakeTools()));
    afterEach(() => tools.remove());
    const detect = (timeoutMs = 5000) => tools.onPath(() => new IntelDetector({ xpuSmi: 'xpu-smi', syclLs: 'sycl-ls', timeoutMs }).detect());

    it("uses xpu-smi, with each device's details", async () => {
      tools.write('xpu-smi', `# xpu-smi 1.2.x\nif [ "$2" = "-d" ]; then /bin/cat <<'EOF'\n${DETAILS}\nEOF\nelse /bin/cat <<'EOF'\n${DISCOVERY}\nEOF\nfi`);
      const result = await detect();
      assert.deepEqual(result.tool, { name: 'xpu-smi' });
      assert.equal(result.devices.length, 2);
      assert.equal(result.devices[0]!.memoryTotalMiB, 131072);
    });

    it('falls back to sycl-ls, and reports "not present" when neither is installed', async () => {
      assert.equal((await detect()).present, false);
      tools.printing('sycl-ls', SYCL_2025);
      const result = await detect();
      assert.deepEqual(result.tool, { name: 'sycl-ls' });
      assert.equal(result.devices[0]!.name, 'Intel(R) Arc(TM) A770 Graphics');
    });

    it('kills a hanging xpu-smi', async () => {
      tools.write('xpu-smi', 'exec /bin/sleep 600');
      await assert.rejects(detect(300), { code: 'ACCELERATOR_TOOL_TIMEOUT' });
    });
  });
});
