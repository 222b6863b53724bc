/**
 * For extensions that own a queue: `processQueue` registers the handler the jobs extension calls, and
 * gives it `progress` and `log` for the job it runs.
 *
 *   ctx.subscriptions.push(processQueue('reports', async (job, { progress, log, token }) => {
 *     await progress(0.5, 'rendering');
 *     return { pages: 3 };
 *   }));
 *
 * The queue must be contributed in the extension's manifest (`contributes.queues: [{ id: "reports" }]`).
 */
import * as aion from '@aion/extension-api';
import type { CancellationToken, Disposable } from '@aion/extension-api';
import type { JobRun, JobsApi } from './api.js';

export interface JobContext {
  progress(fraction: number, stage?: string): Promise<void>;
  log(line: string): Promise<void>;
  /** Cancelled when the job is canceled or its try times out. */
  token: CancellationToken;
}

export type JobHandler = (job: JobRun, context: JobContext) => unknown;

export function jobsApi(): Promise<aion.Remote<JobsApi>> {
  return aion.extensions.getApi<JobsApi>('aion.jobs');
}

export function processQueue(queue: string, handler: JobHandler): Disposable {
  let api: Promise<aion.Remote<JobsApi>> | undefined;
  return aion.contributions.register('queues', queue, {
    run: async (job: JobRun, token: CancellationToken) => {
      const jobs = () => (api ??= jobsApi());
      return handler(job, {
        progress: async (fraction, stage) => (await jobs()).progress(job.id, fraction, stage),
        log: async (line) => (await jobs()).log(job.id, line),
        token,
      });
    },
  });
}
