/** Skills, jobs and health: small resources over the same transport. */
import { readEvents } from './sse.js';
import type { Transport } from './transport.js';
import type { Job, Skill } from './types.js';

type Signal = { signal?: AbortSignal };

export class SkillsApi {
  constructor(private readonly transport: Transport) {}

  /** Every word of `q` must match (prefixes count); `tags` must all match. */
  search(options: { q?: string; tags?: string[]; limit?: number; offset?: number } & Signal = {}): Promise<{ skills: Skill[]; total: number }> {
    const path = options.tags?.length ? `/v1/skills?${options.tags.map((t) => `tag=${encodeURIComponent(t)}`).join('&')}` : '/v1/skills';
    return this.transport.json('GET', path, undefined, { signal: options.signal, query: { q: options.q, limit: options.limit, offset: options.offset } });
  }

  get(id: string, options: Signal = {}): Promise<Skill & { inputSchema?: unknown; outputSchema?: unknown }> {
    return this.transport.json('GET', `/v1/skills/${encodeURIComponent(id)}`, undefined, options);
  }

  /** Runs a skill once (never retried: a skill may have effects); `<device>/<skill id>` runs it on that device. */
  execute<T = unknown>(id: string, args: Record<string, unknown>, options: Signal = {}): Promise<{ result: T; duration_ms: number; device?: string }> {
    return this.transport.json('POST', `/v1/skills/${id.split('/').map(encodeURIComponent).join('/')}/execute`, { args }, options);
  }
}

export class JobsApi {
  constructor(private readonly transport: Transport) {}

  get(id: string, options: Signal = {}): Promise<Job> {
    return this.transport.json('GET', `/v1/jobs/${encodeURIComponent(id)}`, undefined, options);
  }

  logs(id: string, options: Signal = {}): Promise<{ logs: Array<{ at: string; level?: string; message: string }> }> {
    return this.transport.json('GET', `/v1/jobs/${encodeURIComponent(id)}/logs`, undefined, options);
  }

  cancel(id: string, options: Signal = {}): Promise<Job> {
    return this.transport.json('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`, undefined, options);
  }

  /** `progress` events on every change, then `done`. */
  async *events(id: string, options: Signal = {}): AsyncGenerator<{ event: string; data: Job }> {
    const res = await this.transport.send('GET', `/v1/jobs/${encodeURIComponent(id)}/events`, undefined, {
      headers: { accept: 'text/event-stream' },
      signal: options.signal,
    });
    for await (const message of readEvents(res, options.signal)) {
      const event = { event: message.event ?? 'message', data: JSON.parse(message.data) as Job };
      yield event;
      if (event.event === 'done') return;
    }
  }
}

export interface HealthReport {
  status: string;
  [key: string]: unknown;
}

export class HealthApi {
  constructor(private readonly transport: Transport) {}

  /** `/healthz`: 200 while the process serves (details for an admin). */
  live(options: Signal = {}): Promise<HealthReport> {
    return this.transport.json('GET', '/healthz', undefined, options);
  }

  /** `/readyz`: throws `SERVICE_UNAVAILABLE`-style errors while not ready. */
  ready(options: Signal = {}): Promise<HealthReport> {
    return this.transport.json('GET', '/readyz', undefined, { ...options, idempotent: false });
  }

  /** API versions and features; to a signed-in caller also intents, providers and limits. */
  capabilities(options: Signal = {}): Promise<Record<string, any>> {
    return this.transport.json('GET', '/v1/capabilities', undefined, options);
  }
}
