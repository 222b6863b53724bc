import { io, type Socket } from 'socket.io-client';
import { api, ApiError, currentTokens, refreshTokens, setTokens, type Tokens } from './api.js';
import { h, replace, formatBytes, formatMs, since } from './dom.js';

/** Who the console needs: an account holding `*` or `admin:read`. */
const ADMIN_SCOPES = ['*', 'admin:read'];
const PAGES = ['extensions', 'hosts', 'providers', 'tasks', 'people', 'operations'] as const;
type Page = (typeof PAGES)[number];
const TITLES: Record<Page, string> = {
  extensions: 'Extensions',
  hosts: 'Hosts',
  providers: 'Providers',
  tasks: 'Recent tasks',
  people: 'Sessions & users',
  operations: 'Jobs & devices',
};

interface ExtensionRow {
  id: string | null;
  version?: string;
  displayName?: string;
  state: string;
  host?: string;
  hostKey?: string;
  activationMs?: number | null;
  activatedBy?: string | null;
  errors?: Array<{ code: string; message: string }>;
  manifestPath?: string;
}

interface Overview {
  hosts: Array<Record<string, any>>;
  providers: Array<Record<string, any>>;
  tasks: Array<Record<string, any>>;
}

const app = document.getElementById('app')!;
let socket: Socket | undefined;
let extensions: ExtensionRow[] = [];
let overview: Overview = { hosts: [], providers: [], tasks: [] };
let live: 'connecting' | 'live' | 'offline' = 'connecting';
let refetchTimer: number | undefined;
let refetchDue = 0;

function page(): Page {
  const name = location.hash.replace(/^#\/?/, '') as Page;
  return PAGES.includes(name) ? name : 'extensions';
}

// ---- sign-in

function showLogin(message?: string): void {
  socket?.disconnect();
  socket = undefined;
  const error = h('p', { class: 'error', id: 'login-error', role: 'alert', hidden: !message }, message ?? '');
  const username = h('input', { id: 'username', name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { class: 'primary', type: 'submit', id: 'sign-in' }, 'Sign in');
  const form = h(
    'form',
    { class: 'login', id: 'login' },
    h('h1', {}, 'Aion admin console'),
    error,
    h('label', { for: 'username' }, 'Username'),
    username,
    h('label', { for: 'password' }, 'Password'),
    password,
    submit,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit.disabled = true;
    void signIn(username.value, password.value).catch((err: unknown) => {
      error.textContent = err instanceof Error ? err.message : String(err);
      error.hidden = false;
      submit.disabled = false;
      password.value = '';
      password.focus();
    });
  });
  replace(app, form);
  username.focus();
}

async function signIn(username: string, password: string): Promise<void> {
  const res = await fetch('/v1/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body?.error?.message ? `Sign-in failed: ${body.error.message}` : `Sign-in failed (HTTP ${res.status})`);
  const tokens = body as Tokens;
  const scopes = (tokens.scope ?? '').split(' ');
  if (!scopes.some((s) => ADMIN_SCOPES.includes(s))) {
    // Not an admin: end the sign-in at once rather than keep tokens the console cannot use.
    await fetch('/v1/auth/logout', {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: tokens.refresh_token }),
    }).catch(() => undefined);
    throw new Error(`${username} is not an administrator: the console needs an account holding the * or admin:read scope.`);
  }
  setTokens({ ...tokens, username });
  await start();
}

async function signOut(): Promise<void> {
  const tokens = currentTokens();
  setTokens(undefined);
  if (tokens)
    await fetch('/v1/auth/logout', {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: tokens.refresh_token }),
    }).catch(() => undefined);
  showLogin();
}

// ---- live updates

function connect(): void {
  socket?.disconnect();
  const s = io({ auth: (cb) => cb({ token: currentTokens()?.access_token }), transports: ['websocket', 'polling'] });
  socket = s;
  s.on('connect', () => {
    s.emit('subscribe', { room: 'admin' }, (ack: { ok: boolean }) => {
      live = ack?.ok ? 'live' : 'offline';
      renderLive();
      if (ack?.ok) scheduleRefetch(0);
    });
  });
  s.on('disconnect', () => {
    live = 'offline';
    renderLive();
  });
  s.on('connect_error', (err: Error & { data?: { code?: string } }) => {
    live = 'offline';
    renderLive();
    // An expired token: refresh it, and socket.io retries with the new one.
    if (err.data?.code === 'TOKEN_EXPIRED' || err.data?.code === 'UNAUTHENTICATED')
      void refreshTokens().then((ok) => (ok ? s.connect() : showLogin('Your sign-in has ended: sign in again.')));
  });
  s.on('extension', (change: { id: string; state: string; activationMs: number | null; error: { code: string; message: string } | null }) => {
    const row = extensions.find((e) => e.id === change.id);
    if (row) {
      row.state = change.state;
      if (change.activationMs !== null) row.activationMs = change.activationMs;
      if (change.error) row.errors = [...(row.errors ?? []), change.error];
    }
    if (page() === 'extensions') renderPage();
    scheduleRefetch(300);
  });
  s.on('hosts', (hosts: Overview['hosts']) => {
    overview.hosts = hosts;
    if (page() === 'hosts') renderPage();
  });
  s.on('task', (task: Record<string, any>) => {
    overview.tasks = [task, ...overview.tasks.filter((t) => t.task_id !== task.task_id)].slice(0, 200);
    if (page() === 'tasks') renderPage();
  });
  s.on('providers', () => scheduleRefetch(1000));
}

/**
 * Several pushes in a row cause one reload of the full lists. A push never postpones a reload already
 * due: the router pushes its telemetry every second, so postponing would starve the page of reloads.
 */
function scheduleRefetch(delayMs: number): void {
  const due = Date.now() + delayMs;
  if (refetchTimer !== undefined) {
    if (refetchDue <= due) return;
    window.clearTimeout(refetchTimer);
  }
  refetchDue = due;
  refetchTimer = window.setTimeout(() => {
    refetchTimer = undefined;
    void loadCore().then(renderPage, reportError);
  }, delayMs);
}

// ---- data

async function loadCore(): Promise<void> {
  const [list, over] = await Promise.all([api<{ extensions: ExtensionRow[] }>('/v1/extensions'), api<Overview>('/v1/admin/overview')]);
  extensions = list.extensions;
  overview = over;
}

/** A section backed by a route that may be absent (its extension not installed) or need a scope. */
async function optional<T>(path: string): Promise<{ data?: T; note?: string }> {
  try {
    return { data: await api<T>(path, { acceptStatuses: [503] }) };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { note: `Not available: ${path} is not served (its extension is not installed or is disabled).` };
    if (err instanceof ApiError && err.status === 403) return { note: `Not shown: ${err.message}` };
    return { note: err instanceof Error ? err.message : String(err) };
  }
}

function reportError(err: unknown): void {
  if (err instanceof ApiError && err.status === 401) return showLogin('Your sign-in has ended: sign in again.');
  const main = document.getElementById('page');
  if (main) main.prepend(h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err)));
}

// ---- shell and pages

function renderShell(): void {
  const current = page();
  const nav = h('nav', {}, ...PAGES.map((p) => h('a', { href: `#/${p}`, class: p === current ? 'current' : '', id: `nav-${p}` }, TITLES[p])));
  const signOutButton = h('button', { id: 'sign-out', type: 'button' }, 'Sign out');
  signOutButton.addEventListener('click', () => void signOut());
  const header = h(
    'header',
    {},
    h('h1', {}, 'Aion admin'),
    nav,
    h(
      'div',
      { class: 'session' },
      h('span', { id: 'live-status', class: 'live' }),
      h('span', { id: 'signed-in-as' }, currentTokens()?.username ?? ''),
      signOutButton,
    ),
  );
  replace(app, header, h('main', { id: 'page' }));
  renderLive();
}

function renderLive(): void {
  const el = document.getElementById('live-status');
  if (!el) return;
  el.textContent = live === 'live' ? 'live' : live === 'connecting' ? 'connecting…' : 'offline';
  el.className = `live ${live === 'live' ? 'live-on' : 'live-off'}`;
  el.dataset.live = live;
}

function renderPage(): void {
  const main = document.getElementById('page');
  if (!main) return;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.id === `nav-${page()}`);
  const p = page();
  document.title = `${TITLES[p]} · Aion admin`;
  if (p === 'extensions') replace(main, h('h2', {}, TITLES[p]), extensionsTable());
  else if (p === 'hosts') replace(main, h('h2', {}, TITLES[p]), hostsTable());
  else if (p === 'providers') replace(main, h('h2', {}, TITLES[p]), providersTable());
  else if (p === 'tasks') replace(main, h('h2', {}, TITLES[p]), tasksTable());
  else if (p === 'people') void renderPeople(main);
  else void renderOperations(main);
}

const badge = (state: string) => h('span', { class: `state state-${state}`, 'data-state': state }, state);

function table(headers: string[], rows: HTMLElement[], id: string, empty: string): HTMLElement {
  if (rows.length === 0) return h('p', { class: 'muted', id }, empty);
  return h('table', { id }, h('thead', {}, h('tr', {}, ...headers.map((t) => h('th', {}, t)))), h('tbody', {}, ...rows));
}

function extensionsTable(): HTMLElement {
  const rows = extensions.map((e) => {
    const last = e.errors?.at(-1);
    const canToggle = e.id !== null && !['invalid', 'skipped'].includes(e.state) && e.id !== 'aion.admin' && e.id !== 'aion.auth';
    const enable = e.state === 'disabled' || e.state === 'failed';
    const action = h('button', { type: 'button', disabled: !canToggle, 'data-action': enable ? 'enable' : 'disable' }, enable ? 'Enable' : 'Disable');
    action.addEventListener('click', () => void toggle(e.id!, enable ? 'enable' : 'disable', action));
    return h(
      'tr',
      { 'data-extension-id': e.id ?? '' },
      h(
        'td',
        {},
        h('strong', {}, e.id ?? '(invalid manifest)'),
        h('div', { class: 'muted small' }, e.displayName ? `${e.displayName} ${e.version ?? ''}` : (e.manifestPath ?? '')),
      ),
      h('td', { class: 'state-cell' }, badge(e.state)),
      h('td', {}, e.host ?? '—', h('div', { class: 'muted small' }, e.hostKey ?? '')),
      h('td', {}, e.activationMs != null ? formatMs(e.activationMs) : '—', h('div', { class: 'muted small' }, e.activatedBy ?? '')),
      h(
        'td',
        { class: 'errors-cell' },
        last ? h('span', { title: last.message }, `${last.code}: ${last.message}`) : '—',
        (e.errors?.length ?? 0) > 1 ? h('div', { class: 'muted small' }, `${e.errors!.length} errors`) : '',
      ),
      h('td', {}, action),
    );
  });
  return table(['Extension', 'State', 'Host', 'Activation', 'Errors', ''], rows, 'extensions-table', 'No extensions are installed.');
}

async function toggle(id: string, action: 'enable' | 'disable', button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  try {
    await api(`/v1/extensions/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
  } catch (err) {
    reportError(err);
  } finally {
    button.disabled = false;
  }
}

function hostsTable(): HTMLElement {
  const rows = overview.hosts.map((host) =>
    h(
      'tr',
      { 'data-host': host.key },
      h('td', {}, h('strong', {}, host.key)),
      h('td', {}, host.kind),
      h('td', {}, badge(host.state)),
      h('td', { class: 'num' }, host.pid ?? '—'),
      h('td', { class: 'num' }, host.rssBytes != null ? formatBytes(host.rssBytes) : '—'),
      h('td', { class: 'num' }, String(host.restarts)),
      h('td', { class: 'num' }, String(host.crashes)),
      h('td', { class: 'small' }, (host.extensions as string[]).join(', ') || '—'),
    ),
  );
  return table(
    ['Host', 'Kind', 'State', 'PID', 'Memory (RSS)', 'Restarts', 'Crashes', 'Extensions'],
    rows,
    'hosts-table',
    "Waiting for the kernel's first host report (about a second)…",
  );
}

function providersTable(): HTMLElement {
  const rows = overview.providers.map((p) => {
    const circuits = Object.entries(p.circuits as Record<string, string>);
    return h(
      'tr',
      { 'data-provider': p.id },
      h('td', {}, h('strong', {}, p.id), h('div', { class: 'muted small' }, [p.displayName, p.route].filter(Boolean).join(' · '))),
      h('td', {}, p.availability ? badge(p.availability) : '—', p.detail ? h('div', { class: 'muted small' }, p.detail) : ''),
      h(
        'td',
        {},
        circuits.length
          ? h('ul', { class: 'plain' }, ...circuits.map(([model, state]) => h('li', {}, `${model} `, badge(state))))
          : h('span', { class: 'muted' }, 'not called yet'),
      ),
      h('td', { class: 'num' }, `${p.calls}`, p.errors ? h('div', { class: 'small' }, `${p.errors} failed`) : ''),
      h(
        'td',
        { class: 'num' },
        p.meanLatencyMs != null ? formatMs(p.meanLatencyMs) : '—',
        p.p95LatencyMs != null ? h('div', { class: 'muted small' }, `p95 ${formatMs(p.p95LatencyMs)}`) : '',
      ),
      h('td', { class: 'num' }, `${p.inputTokens + p.outputTokens}`),
      h('td', { class: 'num' }, `$${Number(p.spendUsd).toFixed(4)}`),
    );
  });
  return table(
    ['Provider', 'Health', 'Circuits', 'Calls', 'Latency', 'Tokens', 'Spend'],
    rows,
    'providers-table',
    'No provider is known: the router is not installed or lists none.',
  );
}

function tasksTable(): HTMLElement {
  const rows = overview.tasks.map((t) => {
    const r = t.routing ?? {};
    const engine = t.engine ? [t.engine.provider, t.engine.model].filter(Boolean).join('/') || '—' : '—';
    return h(
      'tr',
      { 'data-task': t.task_id },
      h('td', { class: 'small' }, since(t.created_at), h('div', { class: 'muted' }, t.task_id)),
      h('td', {}, t.intent),
      h('td', {}, badge(t.status === 'OK' ? 'ok' : t.status.toLowerCase()), t.error ? h('div', { class: 'small' }, t.error) : ''),
      h('td', {}, engine, h('div', { class: 'muted small' }, t.engine ? `${t.engine.chosen_by}: ${t.engine.reason}` : '')),
      h(
        'td',
        { class: 'small' },
        h('div', {}, `privacy ${r.privacy ?? '—'}`),
        (r.candidates ?? []).length
          ? h(
              'div',
              {},
              'candidates: ',
              (r.candidates as Array<{ engine: string; score: number }>).map((c) => `${c.engine} (${c.score.toFixed(2)})`).join(', '),
            )
          : '',
        (r.filtered ?? []).length
          ? h(
              'div',
              { class: 'muted' },
              'filtered: ',
              (r.filtered as Array<{ engine: string; filter: string }>).map((f) => `${f.engine} by ${f.filter}`).join(', '),
            )
          : '',
        (r.attempts ?? []).length
          ? h('div', {}, 'attempts: ', (r.attempts as Array<{ engine: string; outcome: string }>).map((a) => `${a.engine} ${a.outcome}`).join(' → '))
          : '',
      ),
      h('td', { class: 'num' }, formatMs(t.latency_ms), h('div', { class: 'muted small' }, `$${Number(t.cost_usd).toFixed(4)}`)),
    );
  });
  return table(['When', 'Intent', 'Status', 'Engine', 'Routing', 'Latency / cost'], rows, 'tasks-table', 'No task has finished since the server started.');
}

const card = (label: string, value: string, id: string) =>
  h('div', { class: 'card', id }, h('div', { class: 'muted small' }, label), h('div', { class: 'value' }, value));

async function renderPeople(main: HTMLElement): Promise<void> {
  replace(main, h('h2', {}, TITLES.people), h('p', { class: 'muted' }, 'Loading…'));
  // Counts only: the console never asks who the users are or what the sessions say.
  const [users, sessions] = await Promise.all([
    optional<{ users: number; disabled: number }>('/v1/users/counts'),
    optional<Record<string, number>>('/v1/sessions/counts'),
  ]);
  if (page() !== 'people') return;
  const cards = h('div', { class: 'cards' });
  if (users.data)
    cards.append(card('Users', String(users.data.users), 'count-users'), card('Disabled users', String(users.data.disabled), 'count-disabled-users'));
  const labels: Record<string, string> = { sessions: 'Live sessions', messages: 'Messages', users_with_sessions: 'Users with sessions' };
  if (sessions.data) for (const [k, v] of Object.entries(sessions.data)) cards.append(card(labels[k] ?? k.replace(/_/g, ' '), String(v), `count-${k}`));
  replace(main, h('h2', {}, TITLES.people), cards, ...[users.note, sessions.note].filter(Boolean).map((n) => h('p', { class: 'muted' }, n!)));
}

async function renderOperations(main: HTMLElement): Promise<void> {
  replace(main, h('h2', {}, TITLES.operations), h('p', { class: 'muted' }, 'Loading…'));
  const [jobs, accelerators] = await Promise.all([optional<Record<string, any>>('/v1/jobs/health'), optional<Record<string, any>>('/v1/accelerators')]);
  if (page() !== 'operations') return;
  const parts: Array<HTMLElement | string> = [h('h2', {}, TITLES.operations), h('h3', {}, 'Queues')];
  if (jobs.data) {
    const j = jobs.data;
    parts.push(
      h(
        'p',
        {},
        `Backend ${j.backend?.kind ?? '?'} `,
        badge(j.backend?.ok ? 'ok' : 'failed'),
        ...(j.problems ?? []).map((p: string) => h('div', { class: 'small error' }, p)),
      ),
    );
    parts.push(
      table(
        ['Queue', 'Owner', 'Waiting', 'Running', 'Oldest waiting', 'Served'],
        (j.queues ?? []).map((q: Record<string, any>) =>
          h(
            'tr',
            {},
            h('td', {}, q.id),
            h('td', {}, q.owner ?? '—'),
            h('td', { class: 'num' }, String(q.depth)),
            h('td', { class: 'num' }, String(q.running)),
            h('td', { class: 'num' }, q.oldest_waiting_age_ms != null ? formatMs(q.oldest_waiting_age_ms) : '—'),
            h('td', {}, badge(q.served ? 'ok' : 'degraded')),
          ),
        ),
        'queues-table',
        'No queue is declared.',
      ),
    );
    parts.push(h('h3', {}, 'Workers'));
    parts.push(
      table(
        ['Worker', 'State', 'Queues', 'Last seen'],
        (j.workers ?? []).map((w: Record<string, any>) =>
          h(
            'tr',
            {},
            h('td', {}, w.id),
            h('td', {}, badge(w.state)),
            h('td', {}, (w.queues ?? []).join(', ')),
            h('td', { class: 'small' }, w.last_seen ? since(w.last_seen) : '—'),
          ),
        ),
        'workers-table',
        'No worker has reported.',
      ),
    );
  } else parts.push(h('p', { class: 'muted' }, jobs.note!));
  parts.push(h('h3', {}, 'Devices and accelerators'));
  if (accelerators.data) {
    const devices = (accelerators.data.devices ?? []) as Array<Record<string, any>>;
    parts.push(
      table(
        ['Device', 'Node', 'Kind', 'Name', 'Memory used / total', 'Utilisation'],
        devices.map((d) =>
          h(
            'tr',
            {},
            h('td', {}, String(d.id ?? '—')),
            h('td', {}, String(d.node ?? '—')),
            h('td', {}, `${d.vendor ?? ''} ${d.kind ?? ''}`),
            h('td', {}, String(d.name ?? '—')),
            h(
              'td',
              { class: 'num' },
              d.memoryTotalMiB != null
                ? `${d.memoryUsedMiB != null ? formatBytes(d.memoryUsedMiB * 1048576) + ' / ' : ''}${formatBytes(d.memoryTotalMiB * 1048576)}`
                : '—',
            ),
            h('td', { class: 'num' }, d.utilizationPercent != null ? `${d.utilizationPercent}%` : '—'),
          ),
        ),
        'accelerators-table',
        'No accelerator was detected.',
      ),
    );
  } else parts.push(h('p', { class: 'muted' }, accelerators.note!));
  replace(main, ...parts);
}

// ---- start

async function start(): Promise<void> {
  renderShell();
  try {
    await loadCore();
  } catch (err) {
    return reportError(err);
  }
  renderPage();
  connect();
}

window.addEventListener('hashchange', () => {
  if (currentTokens()) renderPage();
});

if (currentTokens()) void start();
else showLogin();
