/**
 * The router's public API, as other extensions reach it:
 *
 * ```ts
 * const router = await aion.extensions.getApi<RouterApi>('aion.router');
 * const task = await router.complete({ intent: 'summarize', params: { text }, privacy: 'local-only' });
 * ```
 *
 * Tasks submitted this way belong to the calling extension (`ext:<id>`), in the default tenant.
 */
import type { TaskEvent } from './tasks/eventLog.js';
import type { TaskInput } from './frontDoor/input.js';
import type { TaskResult } from './tasks/taskStore.js';
import type { CatalogProvider } from './types.js';

export type { TaskEvent } from './tasks/eventLog.js';
export type { TaskInput } from './frontDoor/input.js';
export type { TaskResult, TaskStatus } from './tasks/taskStore.js';
export type { CatalogProvider, EngineInfo, Privacy, Priority, ChosenBy } from './types.js';
export type * from './providers/providerTypes.js';

export interface RouterApi {
  /** Accepts a task and returns at once (status QUEUED or RUNNING). */
  submitTask(input: TaskInput): TaskResult | Promise<TaskResult>;
  /** Runs a task and returns its final result. */
  complete(input: TaskInput): Promise<TaskResult>;
  getTask(taskId: string): Promise<TaskResult>;
  cancelTask(taskId: string): Promise<TaskResult>;
  /** The task's events (token, partial, done, error) after `afterId`, following live ones. */
  taskEvents(taskId: string, afterId?: number): Promise<AsyncIterable<TaskEvent>>;
  /** The providers the router knows, with their availability. */
  providers(): CatalogProvider[];
  /** Reloads the policy file; rejects with POLICY_INVALID (the previous policies stay) when it is bad. */
  reloadPolicies(): Promise<{ source: string; loaded_at: string }>;
}
export type { RouterTelemetryBatch, ProviderCallSamples } from './telemetry.js';
