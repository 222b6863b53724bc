import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@aion/core';
import { call, createUser, initialAdmin, signInAdmin } from '@aion/ext-auth/testing';
import { startFakeOpenAI, type FakeOpenAI } from '@aion/ext-provider-openai/testing';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ARTIFACTS_DIR, assertConsoleBuilt, CONSOLE_BUILTINS } from './helpers.js';

// The page's globals, for the functions the tests run inside it (this package compiles without the DOM library).
declare const document: {
  getElementById(id: string): { textContent: string | null } | null;
  querySelector(selector: string): { textContent: string | null } | null;
};
declare const sessionStorage: { length: number };
declare const window: { notReloaded?: boolean };

/** Debian's Chromium; `.ci/run` installs it (packages `chromium` and `chromium-driver`). */
const CHROMIUM = process.env.AION_TEST_CHROMIUM ?? '/usr/bin/chromium';
/** A fresh profile each run, and nothing that reaches outside this machine. */
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('admin console in a real browser (Chromium)', function () {
  this.timeout(180_000);
  let kernel: TestKernel;
  let openai: FakeOpenAI;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  let admin: { username: string; password: string };
  let adminToken: string;
  const pageProblems: string[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing: install the Debian packages chromium and chromium-driver (.ci/run does)`);
      console.log(`      (skipped: ${CHROMIUM} is missing; install the Debian packages chromium and chromium-driver to run the browser tests)`);
      this.skip();
    }
    assertConsoleBuilt();
    openai = await startFakeOpenAI();
    kernel = await startTestKernel({
      builtins: [...CONSOLE_BUILTINS, 'aion.router', 'aion.provider-openai'],
      config: {
        extensions: {
          'aion.provider-openai': { baseUrl: openai.url, apiKeySecret: '', timeoutMs: 20_000 },
          'aion.router': { providers: { openai: { enabled: true } } },
        },
        // Built-in providers run in the kernel host by default; the operator's placement gives this one its own process.
        placement: { 'aion.provider-openai': 'dedicated' },
      },
    });
    admin = initialAdmin(kernel);
    adminToken = (await signInAdmin(kernel)).access_token;
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    profile = mkdtempSync(join(tmpdir(), 'aion-admin-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1280, height: 800 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    // A CSP violation or a script error would show here: the console must run under its own policy.
    page.on('console', (msg) => msg.type() === 'error' && !/status of 40[134] /.test(msg.text()) && pageProblems.push(msg.text()));
    page.on('pageerror', (err) => pageProblems.push(String(err)));
  });
  after(async () => {
    await context?.close();
    await kernel?.stop();
    await openai?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS_DIR, `${name}.png`), fullPage: true });
  const signIn = async (username: string, password: string) => {
    await page.fill('#username', username);
    await page.fill('#password', password);
    await page.click('#sign-in');
  };
  const stateOf = (id: string) => page.locator(`tr[data-extension-id="${id}"] .state-cell [data-state]`);

  it('shows an error for a wrong password, and stays on the sign-in form', async () => {
    await page.goto(`${kernel.url}/admin`);
    await page.waitForSelector('form#login');
    await shot('login');
    await signIn(admin.username, 'not-the-password');
    const error = page.locator('#login-error');
    await error.waitFor({ state: 'visible' });
    assert.match((await error.textContent())!, /wrong username or password/);
    assert.equal(await page.locator('#extensions-table').count(), 0);
    await shot('login-wrong-password');
  });

  it('refuses an account that is not an administrator, with a clear message', async () => {
    const alice = await createUser(kernel, adminToken, 'alice', { scopes: ['sessions:read', 'sessions:write'] });
    await signIn('alice', alice.password);
    await page.waitForFunction(() => /not an administrator/.test(document.getElementById('login-error')?.textContent ?? ''));
    assert.match(
      (await page.locator('#login-error').textContent())!,
      /alice is not an administrator: the console needs an account holding the \* or admin:read scope/,
    );
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'no tokens are kept for a refused account');
  });

  it('signs an admin in and lists the extensions with state, host and activation time', async () => {
    await signIn(admin.username, admin.password);
    await page.waitForSelector('#extensions-table');
    await page.waitForSelector('#live-status[data-live="live"]');
    for (const id of ['aion.auth', 'aion.storage', 'aion.admin', 'aion.observability'])
      assert.equal(await page.locator(`tr[data-extension-id="${id}"]`).count(), 1, id);
    assert.equal(await stateOf('aion.observability').getAttribute('data-state'), 'active');
    const row = await page.locator('tr[data-extension-id="aion.observability"]').textContent();
    assert.match(row!, /kernel/);
    assert.match(row!, /\d ms/);
    await shot('extensions');
  });

  it('disables and re-enables an extension from the table, the state changing live without a reload', async () => {
    await page.evaluate(() => (window.notReloaded = true));
    await page.click('tr[data-extension-id="aion.observability"] button[data-action="disable"]');
    await page.waitForSelector('tr[data-extension-id="aion.observability"] [data-state="disabled"]');
    assert.match(
      (await page.locator('tr[data-extension-id="aion.observability"] .errors-cell').textContent())!,
      /EXTENSION_DISABLED: aion.observability was disabled by/,
    );
    assert.equal((await kernel.request('/v1/openapi.json')).status, 503, 'the disabled extension really stopped serving');
    await shot('extensions-disabled');
    await page.click('tr[data-extension-id="aion.observability"] button[data-action="enable"]');
    await page.waitForSelector('tr[data-extension-id="aion.observability"] [data-state="active"]');
    assert.equal((await kernel.request('/v1/openapi.json')).status, 200);
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page was not reloaded');
  });

  it('shows a change made elsewhere (another operator, the API) as it happens', async () => {
    assert.equal((await call(kernel, 'POST', '/v1/extensions/aion.sessions/disable', { token: adminToken })).status, 200);
    await page.waitForSelector('tr[data-extension-id="aion.sessions"] [data-state="disabled"]', { timeout: 10_000 });
    assert.equal((await call(kernel, 'POST', '/v1/extensions/aion.sessions/enable', { token: adminToken })).status, 200);
    await page.waitForSelector('tr[data-extension-id="aion.sessions"] [data-state="active"]', { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.notReloaded), true);
  });

  it('shows providers and a finished task with its routing explanation, pushed live', async () => {
    await page.click('#nav-tasks');
    await page.waitForSelector('#tasks-table, p#tasks-table');
    const submitted = await call(kernel, 'POST', '/v1/tasks', {
      token: adminToken,
      body: { intent: 'chat', messages: [{ role: 'user', content: 'a secret prompt' }], wait: true },
    });
    assert.equal(submitted.status, 200, await submitted.clone().text());
    const task = (await submitted.json()) as { task_id: string };
    await page.waitForSelector(`#tasks-table tr[data-task="${task.task_id}"]`, { timeout: 10_000 });
    const row = (await page.locator(`#tasks-table tr[data-task="${task.task_id}"]`).textContent())!;
    assert.match(row, /chat/);
    assert.match(row, /openai\//);
    assert.match(row, /candidates: openai\//);
    assert.match(row, /attempts: openai\/\S+ ok/);
    assert.doesNotMatch(await page.content(), /a secret prompt/, 'the console shows routing, never content');
    await shot('tasks');
    await page.click('#nav-providers');
    await page.waitForSelector('#providers-table tr[data-provider="openai"]');
    await page.waitForFunction(() => /closed/.test(document.querySelector('#providers-table tr[data-provider="openai"]')?.textContent ?? ''), undefined, {
      timeout: 10_000,
    });
    assert.match((await page.locator('#providers-table tr[data-provider="openai"]').textContent())!, /configured/);
    await shot('providers');
  });

  it('shows hosts with pid, memory and restarts', async () => {
    await page.click('#nav-hosts');
    await page.waitForSelector('#hosts-table tr[data-host="kernel"]');
    const cells = async (host: string) => (await page.locator(`#hosts-table tr[data-host="${host}"] td`).allTextContents()).map((t) => t.trim());
    const [, kind, state, pid, memory, restarts] = await cells('kernel');
    assert.deepEqual([kind, state, pid, restarts], ['kernel', 'running', String(process.pid), '0'], 'the kernel host is this process');
    assert.match(memory!, /^\d+(\.\d)? MiB$/);
    // The provider's own process, started for the task above.
    await page.waitForSelector('#hosts-table tr[data-host="dedicated:aion.provider-openai"]', { timeout: 10_000 });
    const provider = await cells('dedicated:aion.provider-openai');
    assert.equal(provider[2], 'running');
    assert.match(provider[3]!, /^\d+$/);
    assert.notEqual(provider[3], String(process.pid));
    assert.match(provider[4]!, /^\d+(\.\d)? MiB$/);
    await shot('hosts');
  });

  it('shows counts of sessions and users, never their content', async () => {
    await call(kernel, 'POST', '/v1/sessions', { token: adminToken, body: { title: 'private title' } });
    await page.click('#nav-people');
    await page.waitForSelector('#count-users');
    assert.match((await page.locator('#count-users').textContent())!, /Users\s*2/);
    await page.waitForSelector('#count-sessions');
    assert.match((await page.locator('#count-sessions').textContent())!, /1/);
    assert.doesNotMatch(await page.content(), /private title|alice/);
    await shot('sessions-users');
  });

  it('shows jobs and devices, or says which extension is missing', async () => {
    await page.click('#nav-operations');
    // Wait for the answer itself: the previous page's text, read before this one starts loading, is not it.
    await page
      .waitForFunction(() => /\/v1\/jobs\/health is not served/.test(document.getElementById('page')?.textContent ?? ''), undefined, { timeout: 10_000 })
      .catch(() => undefined);
    assert.match((await page.locator('#page').textContent())!, /\/v1\/jobs\/health is not served/);
    await shot('jobs-devices');
  });

  it('ran without a script error or a Content-Security-Policy violation, and signs out', async () => {
    assert.deepEqual(pageProblems, []);
    await page.click('#sign-out');
    await page.waitForSelector('form#login');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });
});
