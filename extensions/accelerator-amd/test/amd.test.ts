import assert from 'node:assert/strict';
import { FakeTools } from '@aion/ext-accelerators/testing';
import { AmdDetector } from '../src/detector.js';
import { parseRocmSmi } from '../src/parse.js';

// rocm-smi 2.0 (ROCm 6.0.2), `--showproductname --showmeminfo vram --showuse --showtemp --showuniqueid
// --showdriverversion --json`: capitalised product keys, string values, a `system` object.
const ROCM_6 = `{"card0": {"Temperature (Sensor edge) (C)": "34.0", "Temperature (Sensor junction) (C)": "38.0", "Temperature (Sensor memory) (C)": "40.0", "GPU use (%)": "3", "Unique ID": "0x8d6b2c4e1f0a3b59", "VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "10960896", "Card Series": "AMD Instinct MI210", "Card Model": "0x740f", "Card Vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "Card SKU": "D67301", "Subsystem ID": "0x0c34", "Device Rev": "0x02", "Node ID": "2", "GUID": "38495", "GFX Version": "gfx90a"}, "card1": {"Temperature (Sensor edge) (C)": "N/A", "GPU use (%)": "0", "Unique ID": "0x1a2b3c4d5e6f7081", "VRAM Total Memory (B)": "68702699520", "VRAM Total Used Memory (B)": "68000000000", "Card Series": "AMD Instinct MI210", "GFX Version": "gfx90a"}, "system": {"Driver version": "6.3.6"}}`;
// rocm-smi 1.4 (ROCm 5.7): lower-case product keys, and a warning line before the JSON.
const ROCM_5 = `WARNING: Unlocked monitor_devices lock; it should have been locked
{"card0": {"Card series": "Radeon RX 7900 XTX", "Card model": "0x744c", "Card vendor": "Advanced Micro Devices, Inc. [AMD/ATI]", "VRAM Total Memory (B)": "25753026560", "VRAM Total Used Memory (B)": "1073741824", "GPU use (%)": "12", "Temperature (Sensor edge) (C)": "45.0"}, "system": {"Driver version": "6.2.4"}}`;

describe('accelerator-amd', () => {
  it('reads rocm-smi JSON of ROCm 6', () => {
    const [mi210, full] = parseRocmSmi(ROCM_6);
    assert.deepEqual(mi210, {
      index: 0,
      name: 'AMD Instinct MI210',
      uuid: '0x8d6b2c4e1f0a3b59',
      memoryTotalMiB: 65520,
      memoryUsedMiB: 10,
      memoryFreeMiB: 65510,
      utilizationPercent: 3,
      temperatureC: 34,
      driverVersion: '6.3.6',
      runtime: { name: 'ROCm' },
      computeCapability: 'gfx90a',
    });
    assert.equal(full!.temperatureC, undefined);
    assert.equal(full!.memoryFreeMiB, 65520 - 64849);
  });

  it('reads rocm-smi JSON of ROCm 5, skipping warnings before it', () => {
    const [card] = parseRocmSmi(ROCM_5);
    assert.equal(card!.name, 'Radeon RX 7900 XTX');
    assert.equal(card!.memoryUsedMiB, 1024);
    assert.equal(card!.driverVersion, '6.2.4');
  });

  it('refuses malformed output with ACCELERATOR_OUTPUT_INVALID', () => {
    assert.throws(() => parseRocmSmi('card0: MI210'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
    assert.throws(() => parseRocmSmi('{"card0": {"VRAM Total Memory (B)": "'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
    assert.throws(() => parseRocmSmi('{"card0": {"Card Series": "X", "VRAM Total Memory (B)": "lots"}}'), { code: 'ACCELERATOR_OUTPUT_INVALID' });
  });

  describe('running rocm-smi from PATH', () => {
    let tools: FakeTools;
    beforeEach(() => (tools = new FakeTools()));
    afterEach(() => tools.remove());
    const detect = (timeoutMs = 5000) => tools.onPath(() => new AmdDetector({ command: 'rocm-smi', timeoutMs }).detect());

    it('reports the GPUs', async () => {
      tools.printing('rocm-smi', ROCM_6);
      const result = await detect();
      assert.equal(result.present, true);
      assert.deepEqual(
        result.devices.map((d) => d.name),
        ['AMD Instinct MI210', 'AMD Instinct MI210'],
      );
    });

    it('reports "not present" without rocm-smi, or without the amdgpu driver', async () => {
      assert.equal((await detect()).present, false);
      tools.printing('rocm-smi', 'ERROR:root:Driver not initialized (amdgpu not found in modules)', 1);
      const result = await detect();
      assert.equal(result.present, false);
      assert.match(result.reason!, /amdgpu/);
    });

    it('fails with a code on a broken tool or a hang', async () => {
      tools.printing('rocm-smi', 'Traceback (most recent call last):\n  ImportError: librocm_smi64.so', 1);
      await assert.rejects(detect(), { code: 'ACCELERATOR_TOOL_FAILED' });
      tools.write('rocm-smi', 'exec /bin/sleep 600');
      await assert.rejects(detect(300), { code: 'ACCELERATOR_TOOL_TIMEOUT' });
    });
  });
});
