import { Ajv, type ValidateFunction } from 'ajv';
import { AionError } from '@aion/extension-api';
import { EventsErrorCodes, type EventTypeInfo } from './api.js';

interface TypeEntry {
  id: string;
  description: string;
  schema?: Record<string, unknown>;
  public?: boolean;
  publishers?: string[];
}

interface CatalogedType extends EventTypeInfo {
  validate: ValidateFunction | null;
}

/**
 * The event types extensions contribute, each owned by its first contributor, with its payload schema
 * compiled once. It decides who may publish what: the owner, the publishers it names, or anyone for a
 * public type; the kernel itself may publish every type.
 */
export class EventTypeCatalog {
  private readonly byId = new Map<string, CatalogedType>();
  readonly refused: string[] = [];

  constructor(contributions: Array<{ extensionId: string; entry: Record<string, unknown> }>) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    for (const { extensionId, entry } of contributions) {
      const e = entry as unknown as TypeEntry;
      const existing = this.byId.get(e.id);
      if (existing) {
        this.refused.push(`${extensionId} contributes event type ${e.id}, which ${existing.owner} already owns; ignored`);
        continue;
      }
      let validate: ValidateFunction | null = null;
      if (e.schema) {
        try {
          validate = ajv.compile(e.schema);
        } catch (err) {
          this.refused.push(`${extensionId} contributes event type ${e.id} with a schema that does not compile (${(err as Error).message}); ignored`);
          continue;
        }
      }
      this.byId.set(e.id, {
        id: e.id,
        description: e.description,
        owner: extensionId,
        public: e.public === true,
        publishers: e.publishers ?? [],
        schema: e.schema ?? null,
        validate,
      });
    }
  }

  all(): EventTypeInfo[] {
    return [...this.byId.values()].map(({ validate: _validate, ...info }) => info);
  }

  /** Throws a stable error unless `publisher` (undefined: the kernel) may publish `payload` as `type`. */
  check(publisher: string | undefined, type: unknown, payload: unknown): void {
    if (typeof type !== 'string' || !this.byId.has(type)) {
      throw new AionError(
        EventsErrorCodes.EVENT_TYPE_UNKNOWN,
        `no installed extension contributes the event type ${JSON.stringify(type)}: declare it in your manifest under contributes.eventTypes`,
        {
          status: 400,
          details: { type },
        },
      );
    }
    const t = this.byId.get(type)!;
    if (publisher !== undefined && publisher !== t.owner && !t.public && !t.publishers.includes(publisher)) {
      throw new AionError(
        EventsErrorCodes.EVENT_PUBLISH_DENIED,
        `${publisher} may not publish ${type}: it belongs to ${t.owner}; contribute your own type under contributes.eventTypes, or ${t.owner} names you in its publishers`,
        { status: 403, details: { publisher, type, owner: t.owner } },
      );
    }
    if (t.validate && !t.validate(payload)) {
      const problems = (t.validate.errors ?? []).map((e) => `${e.instancePath || '(payload)'} ${e.message ?? 'is invalid'}`);
      throw new AionError(EventsErrorCodes.EVENT_PAYLOAD_INVALID, `the payload of ${type} does not match its schema: ${problems.join('; ')}`, {
        status: 400,
        details: { type, errors: t.validate.errors },
      });
    }
  }
}
