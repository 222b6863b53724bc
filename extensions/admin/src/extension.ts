import { join } from 'node:path';
import * as aion from '@aion/extension-api';
import { EXTENSION_STATE_EVENT, TELEMETRY_EVENT, type ExtensionStateChange, type Principal, type TelemetryBatch } from '@aion/extension-api';
import type { RouterApi, RouterTelemetryBatch, TaskResult } from '@aion/ext-router';
import { ConsoleSite } from './consoleSite.js';
import { Overview } from './overview.js';

/** The socket.io room the console joins for live updates; only admins may. */
export const ADMIN_ROOM = 'admin';
/** The scope that reads the console's data (`*` holds it too). */
export const ADMIN_READ_SCOPE = 'admin:read';

export function isAdmin(principal: Pick<Principal, 'scopes'> | null | undefined): boolean {
  return !!principal && (principal.scopes.includes('*') || principal.scopes.includes(ADMIN_READ_SCOPE));
}

export async function activate(ctx: aion.ExtensionContext): Promise<void> {
  const site = new ConsoleSite(join(ctx.extensionPath, 'dist', 'console'));
  if (!site.built) ctx.logger.warn('the admin console has not been built: /admin answers 503 until "npm run build" has run');
  const overview = new Overview(ctx.configuration.get<number>('recentTasks') ?? 50);
  const publish = (event: string, data: unknown) => aion.realtime.publish(ADMIN_ROOM, event, data);

  const routerProviders = async () => {
    try {
      return await (await aion.extensions.getApi<RouterApi>('aion.router')).providers();
    } catch {
      return undefined; // no router installed, or disabled: the console lists what telemetry reported
    }
  };

  ctx.subscriptions.push(
    aion.http.handle('GET /admin', (req) => site.index(req.headers['if-none-match'])),
    aion.http.handle('GET /admin/:file', (req) => site.asset(req.params.file ?? '', req.headers['if-none-match'])),
    aion.http.handle('GET /v1/admin/overview', async () => ({
      headers: { 'cache-control': 'no-store' },
      body: { hosts: overview.hostViews(), providers: overview.providerViews(await routerProviders()), tasks: overview.taskViews() },
    })),
    aion.hooks.tap('realtime.authorize', ({ principal, room }: { principal?: Principal | null; room?: string }) =>
      room === ADMIN_ROOM ? isAdmin(principal) : undefined,
    ),
    aion.events.on(EXTENSION_STATE_EVENT, (change: ExtensionStateChange) => publish('extension', change)),
    aion.events.on(TELEMETRY_EVENT, (batch: TelemetryBatch) => {
      overview.applyKernel(batch);
      publish('hosts', overview.hostViews());
    }),
    aion.events.on('router.telemetry', (batch: RouterTelemetryBatch) => {
      overview.applyRouter(batch);
      publish('providers', overview.providerViews(undefined));
    }),
  );
  // Only where the router (which declares the hook) is installed: tapping an undeclared hook is logged as a mistake.
  const routerInstalled = (await aion.contributions.list('routes')).some(({ extensionId }) => extensionId === 'aion.router');
  if (routerInstalled) {
    ctx.subscriptions.push(
      aion.hooks.tap('router.afterTask', ({ task, principal }: { task: TaskResult; principal?: { sub?: string } }) => {
        publish('task', overview.addTask(task, principal?.sub));
      }),
    );
  }
}
