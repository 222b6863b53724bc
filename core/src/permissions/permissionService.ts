import { inject, injectable } from 'inversify';
import { AionError, ErrorCodes, type CallAccess, type Principal } from '@aion/extension-api';
import { CommandRegistry } from '../commands/commandRegistry.js';
import type { AionConfig, ExtensionGrant } from '../config/configuration.js';
import { ExtensionRegistry } from '../registry/extensionRegistry.js';
import { TYPES } from '../tokens.js';

const grantHint = (callerId: string, kind: string, name: string) =>
  `the operator grants it with permissions.grants["${callerId}"].${kind}: ["${name}"] in the configuration`;

/**
 * Who may call what. The kernel (callerId undefined) and extensions in the kernel host — which run
 * inside the kernel's process with its full authority — may call anything; every other extension
 * gets `public` calls, and `privileged` ones only by an operator grant, never by its manifest alone.
 */
@injectable()
export class PermissionService {
  constructor(
    @inject(TYPES.KernelOptions) private readonly config: AionConfig,
    @inject(ExtensionRegistry) private readonly registry: ExtensionRegistry,
    @inject(CommandRegistry) private readonly commands: CommandRegistry,
  ) {}

  grantOf(extensionId: string): ExtensionGrant {
    return this.config.permissions.grants[extensionId] ?? {};
  }

  /** Extensions that run inside the kernel process: checking them would be theatre, so they are trusted. */
  isTrusted(callerId: string | undefined): boolean {
    return callerId === undefined || this.registry.get(callerId)?.hostKind === 'kernel';
  }

  /** Throws FORBIDDEN unless `callerId` may run `command`; `principal` is a user the caller acts for, verified by the kernel. */
  assertMayExecuteCommand(callerId: string | undefined, command: string, principal?: Principal): void {
    const declaration = this.commands.declarationOf(command);
    const scopes = declaration?.scopes ?? [];
    const holds = (p: Principal) => scopes.every((s) => p.scopes.includes(s) || p.scopes.includes('*'));
    // A user a caller acts for must hold the command's scopes, however trusted the caller that relays it.
    if (principal && scopes.length > 0 && !holds(principal)) {
      const missingScopes = scopes.filter((s) => !principal.scopes.includes(s) && !principal.scopes.includes('*'));
      throw new AionError(ErrorCodes.FORBIDDEN, `${principal.sub} lacks ${missingScopes.join(', ')} to run ${command}`, {
        details: { command, missingScopes },
      });
    }
    if ((declaration?.access ?? 'public') === 'public' || this.isTrusted(callerId)) return;
    if (this.grantOf(callerId!).commands?.includes(command)) return;
    if (principal && scopes.length > 0) return;
    const forUser = scopes.length > 0 ? `, or it runs the command for a signed-in user holding ${scopes.join(', ')} with commands.executeFor()` : '';
    throw new AionError(
      ErrorCodes.FORBIDDEN,
      `${callerId} may not run the privileged command ${command}: ${grantHint(callerId!, 'commands', command)}${forUser}`,
      {
        details: {
          caller: callerId,
          command,
          missingPermission: `commands:${command}`,
          ...(principal && scopes.length ? { missingScopes: scopes.filter((s) => !principal.scopes.includes(s)) } : {}),
        },
      },
    );
  }

  /** Throws FORBIDDEN unless `callerId` may call `method` (or, without a method, reach the API at all). */
  assertMayCallApi(callerId: string | undefined, targetId: string, method?: string): void {
    if (this.isTrusted(callerId) || callerId === targetId) return;
    if (this.apiAccess(targetId, method) === 'public') return;
    const apis = this.grantOf(callerId!).apis ?? [];
    if (apis.includes(targetId) || (method !== undefined && apis.includes(`${targetId}#${method}`))) return;
    // Reaching an API whose methods are privileged is allowed; each privileged call is checked.
    if (method === undefined && this.hasPublicMethod(targetId)) return;
    const what = method ? `${targetId}#${method}` : targetId;
    throw new AionError(ErrorCodes.FORBIDDEN, `${callerId} may not call the privileged API ${what}: ${grantHint(callerId!, 'apis', what)}`, {
      details: { caller: callerId, api: targetId, method, missingPermission: `apis:${what}` },
    });
  }

  /** Throws FORBIDDEN unless `callerId` may tap `hook`; the kernel's own hooks and hooks declared `tap: privileged` need a grant. */
  assertMayTapHook(callerId: string, hook: string, access: CallAccess): void {
    if (access === 'public' || this.isTrusted(callerId)) return;
    if (this.grantOf(callerId).hooks?.includes(hook)) return;
    throw new AionError(ErrorCodes.FORBIDDEN, `${callerId} may not tap the privileged hook ${hook}: ${grantHint(callerId, 'hooks', hook)}`, {
      details: { caller: callerId, hook, missingPermission: `hooks:${hook}` },
    });
  }

  private apiAccess(targetId: string, method?: string): CallAccess {
    const declared = this.registry.get(targetId)?.manifest.aion?.api;
    return (method !== undefined ? declared?.methods?.[method] : undefined) ?? declared?.access ?? 'public';
  }

  private hasPublicMethod(targetId: string): boolean {
    const declared = this.registry.get(targetId)?.manifest.aion?.api;
    return declared?.access !== 'privileged' || Object.values(declared.methods ?? {}).includes('public');
  }
}
