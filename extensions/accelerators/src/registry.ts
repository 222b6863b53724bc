import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { AionError, isAionError, type Logger } from '@aion/extension-api';
import type { AcceleratorDevice, AcceleratorSnapshot, DetectorStatus, DeviceKind } from './api.js';
import type { AcceleratorDetector, DetectionResult } from './kit/detection.js';
import { detectionResultSchema } from './resultSchema.js';

/** An `accelerators` entry as a manifest declares it (validated by the kernel against the point's schema). */
export interface AcceleratorEntry {
  id: string;
  vendor: string;
  kind?: DeviceKind;
  title?: string;
}

export interface RegistryOptions {
  /** Every entry contributed to the `accelerators` point, with the extension contributing it. */
  listEntries(): Promise<Array<{ extensionId: string; entry: Record<string, unknown> }>>;
  /** The detector registered for an entry (activating its extension on first use). */
  detector(id: string): Promise<AcceleratorDetector>;
  /** A detector that does not answer within this long is reported as failed; its devices are dropped. */
  detectorTimeoutMs: number;
  refreshIntervalMs: number;
  /** Entry ids not to run. */
  disabled: readonly string[];
  node: string;
  logger: Pick<Logger, 'warn' | 'debug'>;
}

export const RegistryErrorCodes = {
  DETECTOR_TIMEOUT: 'ACCELERATOR_DETECTOR_TIMEOUT',
  DETECTOR_RESULT_INVALID: 'ACCELERATOR_DETECTOR_RESULT_INVALID',
  DETECTOR_FAILED: 'ACCELERATOR_DETECTOR_FAILED',
} as const;

/**
 * Runs every contributed detector, all at once, each bounded by a timeout, and keeps the last
 * reading. A detector that hangs, throws or answers something malformed is reported with a code
 * and contributes no devices; the others are unaffected.
 */
export class AcceleratorRegistry {
  private current?: AcceleratorSnapshot;
  private first?: Promise<AcceleratorSnapshot>;
  private running?: Promise<AcceleratorSnapshot>;
  private timer?: NodeJS.Timeout;
  private readonly validate: ValidateFunction<DetectionResult>;
  private readonly loggedStates = new Map<string, string>();

  constructor(private readonly options: RegistryOptions) {
    this.validate = new Ajv2020({ allErrors: true, strict: false }).compile<DetectionResult>(detectionResultSchema);
  }

  /** Takes the first reading and then one every `refreshIntervalMs` (0: only on demand). */
  start(): void {
    this.first = this.refresh();
    this.first.catch(() => undefined);
    if (this.options.refreshIntervalMs > 0) {
      this.timer = setInterval(
        () => void this.refresh().catch((err) => this.options.logger.warn('reading accelerators failed', { error: String(err) })),
        this.options.refreshIntervalMs,
      );
      this.timer.unref();
    }
  }

  /** The last reading; before the first one finishes, waits for it. */
  async snapshot(): Promise<AcceleratorSnapshot> {
    return this.current ?? (await (this.first ?? this.refresh()));
  }

  /** Reads every detector now; a call while a refresh runs shares it. */
  refresh(): Promise<AcceleratorSnapshot> {
    this.running ??= this.readAll().finally(() => (this.running = undefined));
    return this.running;
  }

  dispose(): void {
    clearInterval(this.timer);
  }

  private async entries(): Promise<Array<{ extensionId: string; entry: AcceleratorEntry }>> {
    const listed = await this.options.listEntries();
    // An implementation registered without a manifest entry has no vendor to report under.
    return listed
      .filter((c) => typeof c.entry.vendor === 'string' && !this.options.disabled.includes(String(c.entry.id)))
      .map((c) => ({ extensionId: c.extensionId, entry: c.entry as unknown as AcceleratorEntry }));
  }

  private async readAll(): Promise<AcceleratorSnapshot> {
    const entries = await this.entries();
    const results = await Promise.all(entries.map(({ extensionId, entry }) => this.readOne(extensionId, entry)));
    const snapshot: AcceleratorSnapshot = {
      node: this.options.node,
      refreshedAt: new Date().toISOString(),
      refreshIntervalMs: this.options.refreshIntervalMs,
      devices: results.flatMap((r) => r.devices),
      detectors: results.map((r) => r.status),
    };
    this.current = snapshot;
    return snapshot;
  }

  private async readOne(extensionId: string, entry: AcceleratorEntry): Promise<{ status: DetectorStatus; devices: AcceleratorDevice[] }> {
    const kind = entry.kind ?? 'gpu';
    const started = performance.now();
    const base = { id: entry.id, extensionId, vendor: entry.vendor, kind };
    const done = (rest: Omit<DetectorStatus, keyof typeof base | 'durationMs' | 'checkedAt'>): DetectorStatus => {
      const status = { ...base, ...rest, durationMs: Math.round((performance.now() - started) * 100) / 100, checkedAt: new Date().toISOString() };
      this.logTransition(status);
      return status;
    };
    let result: DetectionResult;
    try {
      result = await this.withTimeout(
        entry.id,
        this.options.detector(entry.id).then((d) => d.detect()),
      );
    } catch (err) {
      const error = isAionError(err)
        ? { code: String(err.code), message: err.message }
        : { code: RegistryErrorCodes.DETECTOR_FAILED, message: err instanceof Error ? err.message : String(err) };
      return { status: done({ state: 'error', error, devices: 0 }), devices: [] };
    }
    if (!this.validate(result)) {
      const problems = (this.validate.errors ?? [])
        .slice(0, 5)
        .map((e) => `${e.instancePath || '/'} ${e.message}`)
        .join('; ');
      return {
        status: done({
          state: 'error',
          error: {
            code: RegistryErrorCodes.DETECTOR_RESULT_INVALID,
            message: `The detector ${entry.id} answered something that is not a detection result: ${problems}.`,
          },
          devices: 0,
        }),
        devices: [],
      };
    }
    const readAt = new Date().toISOString();
    const devices: AcceleratorDevice[] = result.present
      ? result.devices.map((d) => ({
          ...d,
          id: `${entry.id}:${d.index}`,
          node: this.options.node,
          vendor: entry.vendor,
          kind,
          detector: entry.id,
          extensionId,
          readAt,
        }))
      : [];
    const unique = devices.filter((d, i) => devices.findIndex((o) => o.id === d.id) === i);
    const state = result.present && unique.length > 0 ? 'present' : 'absent';
    const reason = state === 'absent' ? (result.reason ?? 'no devices found') : undefined;
    return { status: done({ state, ...(reason ? { reason } : {}), ...(result.tool ? { tool: result.tool } : {}), devices: unique.length }), devices: unique };
  }

  private withTimeout<T>(id: string, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new AionError(
              RegistryErrorCodes.DETECTOR_TIMEOUT,
              `The detector ${id} did not answer within ${this.options.detectorTimeoutMs} ms; its devices are left out until it does.`,
            ),
          ),
        this.options.detectorTimeoutMs,
      );
    });
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  /** Logs a detector's state when it changes, not on every refresh. */
  private logTransition(status: DetectorStatus): void {
    const key = `${status.state}:${status.error?.code ?? ''}:${status.devices}`;
    if (this.loggedStates.get(status.id) === key) return;
    this.loggedStates.set(status.id, key);
    if (status.state === 'error')
      this.options.logger.warn(`accelerator detector ${status.id} failed: ${status.error?.code} ${status.error?.message}`, { detector: status.id });
    else
      this.options.logger.debug(`accelerator detector ${status.id}: ${status.state}${status.reason ? ` (${status.reason})` : ''}, ${status.devices} devices`, {
        detector: status.id,
      });
  }
}
