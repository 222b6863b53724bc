import { AionError, type CancellationToken, type Remote } from '@aion/extension-api';
import type { ProjectsApi, ProjectUser } from '@aion/ext-projects';
import type { RouterApi, TaskInput, TaskResult } from '@aion/ext-router';
import type { AiDocsJobResult, AiDocsKind, AiDocsRequest } from './api.js';
import { aiDocsError } from './errors.js';
import { buildMessages, INTENT_OF, numberedExcerpt } from './prompts.js';
import { parseAnswer } from './schemas.js';

export interface AiDocsConfiguration {
  maxFileBytes: number;
  maxTokens: number;
  taskTimeoutMs: number;
  resultRetries: number;
}

/** What a job carries: the request and the user it runs for (projects are read as that user). */
export interface AiDocsPayload {
  kind: AiDocsKind;
  request: AiDocsRequest;
  user: ProjectUser;
}

export interface WorkerDeps {
  projects: Remote<ProjectsApi>;
  router: Remote<RouterApi>;
  config: AiDocsConfiguration;
  progress(fraction: number, stage: string): Promise<void>;
  /** Cancelled when the job is canceled or times out: the running model task is canceled too. */
  token?: CancellationToken;
}

const FINAL = new Set(['OK', 'ERROR', 'TIMEOUT', 'CANCELED']);

/** Submits a task and waits for its end by following its events, canceling it when `token` is. */
async function runTask(router: Remote<RouterApi>, input: TaskInput, token: CancellationToken | undefined): Promise<TaskResult> {
  const submitted = await router.submitTask(input);
  if (FINAL.has(submitted.status)) return submitted;
  const cancel = () => void router.cancelTask(submitted.task_id).catch(() => undefined);
  const listener = token?.onCancellationRequested(cancel);
  try {
    if (token?.isCancellationRequested) cancel();
    for await (const e of await router.taskEvents(submitted.task_id)) {
      if (e.event === 'done') return e.data as TaskResult;
      if (e.event === 'error') return (e.data as { task?: TaskResult }).task ?? (await router.getTask(submitted.task_id));
    }
    return router.getTask(submitted.task_id);
  } finally {
    listener?.dispose();
  }
}

/** A task that did not end OK becomes the job's error, with the router's code and explanation. */
function taskError(task: TaskResult): AionError {
  const code = task.error?.code ?? 'AI_TASK_FAILED';
  return new AionError(code, task.error?.message ?? `the model task ended ${task.status}`, { details: { task_id: task.task_id, routing: task.routing } });
}

/**
 * One documentation job: read the file as the user (confined and size-capped by aion.projects),
 * ask the router with the kind's intent, validate the JSON answer; ask again with the problem
 * stated, up to `resultRetries` times, then fail with AI_RESULT_INVALID.
 */
export async function runAiDocsJob(payload: AiDocsPayload, deps: WorkerDeps): Promise<AiDocsJobResult> {
  const { kind, request, user } = payload;
  await deps.progress(0.1, 'reading');
  const file = await deps.projects.resolveFile(request.project_id, request.path, { maxBytes: deps.config.maxFileBytes, for: user });
  const range = request.range ?? null;
  const bounds = numberedExcerpt(file.content, range);
  if (range && range.start_line > bounds.last) {
    throw aiDocsError('INVALID_AI_REQUEST', `range starts at line ${range.start_line}, but ${file.path} has ${bounds.last} lines`);
  }
  const promptFile = { path: file.path, content: file.content, range, symbol: request.symbol ?? null };
  const usage = { latency_ms: 0, tokens: { input: 0, output: 0, total: 0 }, cost_usd: 0 };
  let note: string | undefined;
  let tasks = 0;
  for (let attempt = 0; attempt <= deps.config.resultRetries; attempt++) {
    await deps.progress(0.3 + (0.6 * attempt) / (deps.config.resultRetries + 1), attempt === 0 ? 'asking the model' : 'asking again');
    const task = await runTask(
      deps.router,
      {
        intent: INTENT_OF[kind],
        messages: buildMessages(kind, promptFile, note),
        max_tokens: deps.config.maxTokens,
        temperature: 0,
        timeout_ms: deps.config.taskTimeoutMs,
        ...(request.privacy ? { privacy: request.privacy } : {}),
        // Policies can match these; the task itself belongs to this extension.
        metadata: {
          source: 'aion.ai-docs',
          kind,
          project_id: request.project_id,
          tenant_id: user.tenant_id,
          user: typeof user.owner === 'string' ? user.owner : user.sub,
        },
      },
      deps.token,
    );
    tasks++;
    if (task.status !== 'OK') throw taskError(task);
    usage.latency_ms += task.usage.latency_ms;
    usage.tokens.input += task.usage.tokens.input;
    usage.tokens.output += task.usage.tokens.output;
    usage.tokens.total += task.usage.tokens.total;
    usage.cost_usd += task.usage.cost_usd;
    const parsed = parseAnswer(kind, task.result?.text ?? '', bounds);
    if (parsed.ok) {
      return { kind, output: parsed.value, task_id: task.task_id, engine: task.engine, usage, tasks, file: { path: file.path, size: file.size, range } };
    }
    note = parsed.problem;
  }
  throw aiDocsError('AI_RESULT_INVALID', `the model's answer was not valid after ${tasks} ${tasks === 1 ? 'try' : 'tries'}: ${note}`, { tasks });
}
