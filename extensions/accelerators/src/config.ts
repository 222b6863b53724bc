/** `extensions["aion.accelerators"]`, with every default filled in. */
export interface AcceleratorsConfig {
  refreshIntervalMs: number;
  detectorTimeoutMs: number;
  disabled: string[];
}

export function readConfig(raw: Record<string, unknown> | undefined): AcceleratorsConfig {
  const c = raw ?? {};
  return {
    refreshIntervalMs: typeof c.refreshIntervalMs === 'number' ? c.refreshIntervalMs : 30_000,
    detectorTimeoutMs: typeof c.detectorTimeoutMs === 'number' ? c.detectorTimeoutMs : 20_000,
    disabled: Array.isArray(c.disabled) ? c.disabled.map(String) : [],
  };
}
