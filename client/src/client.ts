import { AuthApi, MemoryTokenStore, SessionCredentials, type TokenStore } from './auth.js';
import { LiveConnection } from './live.js';
import { HealthApi, JobsApi, SkillsApi } from './resources.js';
import { SessionsApi } from './sessions.js';
import { TasksApi } from './tasks.js';
import { DevicesApi } from './device.js';
import { AiDocsApi, PreviewApi, ProjectsApi } from './workspace.js';
import { Transport, type RetryOptions } from './transport.js';

export interface AionClientOptions {
  /** The hub, e.g. `http://127.0.0.1:8080` (paths such as `/v1/tasks` are appended). */
  baseUrl: string;
  /** An API key (`aion_…`): sent as a bearer credential; no sign-in needed. */
  apiKey?: string;
  /** A ready access token (e.g. a device token), used as is and never refreshed. */
  accessToken?: string;
  /** Where tokens from `auth.login` live (memory by default). */
  tokenStore?: TokenStore;
  /** Retries of idempotent calls (GET, submits with an Idempotency-Key) on 408/429/502/503/504 and network errors. */
  retry?: RetryOptions;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/**
 * A typed client for an Aion hub. Each area is a property: `auth`, `tasks`, `sessions`, `skills`,
 * `jobs`, `health`, `projects`, `preview`, `aiDocs`, `devices`. Errors are `AionApiError` with the server's stable `code`.
 */
export class AionClient {
  readonly auth: AuthApi;
  readonly tasks: TasksApi;
  readonly sessions: SessionsApi;
  readonly skills: SkillsApi;
  readonly jobs: JobsApi;
  readonly health: HealthApi;
  readonly projects: ProjectsApi;
  readonly preview: PreviewApi;
  readonly aiDocs: AiDocsApi;
  readonly devices: DevicesApi;
  private liveConnection?: LiveConnection;
  private readonly credentials: SessionCredentials;
  private readonly transport: Transport;

  constructor(options: AionClientOptions) {
    const baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.credentials = new SessionCredentials(options.tokenStore ?? new MemoryTokenStore(), options.apiKey, options.accessToken);
    const retry = { retries: options.retry?.retries ?? 3, minDelayMs: options.retry?.minDelayMs ?? 200, maxDelayMs: options.retry?.maxDelayMs ?? 10_000 };
    const fetchImpl = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => globalThis.fetch(input, init));
    this.transport = new Transport(baseUrl, this.credentials, retry, fetchImpl);
    this.credentials.transport = this.transport;
    this.auth = new AuthApi(this.transport, this.credentials);
    this.tasks = new TasksApi(this.transport);
    this.sessions = new SessionsApi(this.transport, () => this.live());
    this.skills = new SkillsApi(this.transport);
    this.jobs = new JobsApi(this.transport);
    this.health = new HealthApi(this.transport);
    this.projects = new ProjectsApi(this.transport);
    this.preview = new PreviewApi(this.transport);
    this.aiDocs = new AiDocsApi(this.transport);
    this.devices = new DevicesApi(this.transport);
  }

  get baseUrl(): string {
    return this.transport.baseUrl;
  }

  /** The socket.io connection for live updates, opened on first use. */
  live(): LiveConnection {
    this.liveConnection ??= new LiveConnection(this.transport.baseUrl, () => this.credentials.bearer());
    return this.liveConnection;
  }

  /** Closes the live connection, if one was opened. */
  close(): void {
    this.liveConnection?.close();
    this.liveConnection = undefined;
  }
}
