/** The part of the router's `router.afterTask` payload this source reads. */
export interface AfterTaskPayload {
  task?: {
    task_id: string;
    intent: string;
    status: string;
    engine: Record<string, unknown> | null;
    usage?: Record<string, unknown>;
    error: { code: string; message: string } | null;
    routing?: { attempts?: Array<{ engine: string; outcome: string; code?: string; message?: string }> };
  };
  principal?: { sub?: string | null; tenant_id?: string | null };
}

type Publish = (type: string, payload: unknown, options: { tenantId?: string; key?: string }) => Promise<string>;

/**
 * Router tasks as events: `task.finished` for each final task, and `provider.failed` for each provider
 * call that failed on the way (also when the router then fell back to another engine and succeeded).
 */
export async function publishRouterTask(payload: AfterTaskPayload, publish: Publish): Promise<void> {
  const task = payload?.task;
  if (!task || !['OK', 'ERROR', 'TIMEOUT', 'CANCELED'].includes(task.status)) return;
  const tenant = payload.principal?.tenant_id ?? 'default';
  const tenantId = /^[A-Za-z0-9_-]{1,64}$/.test(tenant) ? tenant : 'default';
  for (const attempt of task.routing?.attempts ?? []) {
    if (attempt.outcome !== 'failed') continue;
    await publish(
      'provider.failed',
      { task_id: task.task_id, engine: attempt.engine, code: attempt.code ?? null, message: attempt.message ?? null },
      { tenantId, key: attempt.engine },
    );
  }
  await publish(
    'task.finished',
    {
      task_id: task.task_id,
      intent: task.intent,
      status: task.status,
      engine: task.engine,
      usage: task.usage ?? {},
      error: task.error,
      subject: payload.principal?.sub ?? null,
    },
    { tenantId, key: task.task_id },
  );
}
