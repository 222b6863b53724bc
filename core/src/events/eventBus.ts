import { injectable } from 'inversify';
import { Emitter, type Disposable } from '@aion/extension-api';
import { EventsProtocol } from '@aion/extension-api/protocol';
import type { HostConnection } from '../hosts/hostManager.js';

/** Named events across hosts: a host subscribes once per name and receives every emission. */
@injectable()
export class EventBus {
  private readonly subscribers = new Map<string, Set<HostConnection>>();
  private readonly local = new Map<string, Emitter<unknown>>();

  subscribe(event: string, host: HostConnection): void {
    let set = this.subscribers.get(event);
    if (!set) this.subscribers.set(event, (set = new Set()));
    set.add(host);
  }

  forgetHost(host: HostConnection): void {
    for (const set of this.subscribers.values()) set.delete(host);
  }

  on(event: string, listener: (data: unknown) => void): Disposable {
    let emitter = this.local.get(event);
    if (!emitter) this.local.set(event, (emitter = new Emitter()));
    return emitter.event(listener);
  }

  /** Whether any host or in-kernel listener would receive `event`: emitters skip building data nobody reads. */
  hasListeners(event: string): boolean {
    return (this.subscribers.get(event)?.size ?? 0) > 0 || (this.local.get(event)?.hasListeners ?? false);
  }

  emit(event: string, data: unknown): void {
    this.local.get(event)?.fire(data);
    for (const host of this.subscribers.get(event) ?? []) {
      if (host.state !== 'exited') host.endpoint.sendNotification(EventsProtocol.host.deliver, { event, data });
    }
  }
}
