import { injectable } from 'inversify';
import type { CommandContribution } from '@aion/extension-api';

/** Which extension owns each command: declared in manifests, or registered at runtime. */
@injectable()
export class CommandRegistry {
  private readonly declared = new Map<string, string>();
  private readonly declarations = new Map<string, CommandContribution>();
  private readonly runtime = new Map<string, string>();

  /** The first extension to declare a command owns it; its manifest entry says who may call it. */
  declare(declaration: CommandContribution, extensionId: string): void {
    if (this.declared.has(declaration.command)) return;
    this.declared.set(declaration.command, extensionId);
    this.declarations.set(declaration.command, declaration);
  }

  declarationOf(command: string): CommandContribution | undefined {
    return this.declarations.get(command);
  }

  /** A command declared in a manifest is registered only by the extension that declares it. */
  register(command: string, extensionId: string): boolean {
    const declaredBy = this.declared.get(command);
    if (declaredBy !== undefined && declaredBy !== extensionId) return false;
    this.runtime.set(command, extensionId);
    return true;
  }

  unregister(command: string, extensionId: string): void {
    if (this.runtime.get(command) === extensionId) this.runtime.delete(command);
  }

  ownerOf(command: string): string | undefined {
    return this.runtime.get(command) ?? this.declared.get(command);
  }

  forgetExtension(extensionId: string): void {
    for (const [command, owner] of this.runtime) if (owner === extensionId) this.runtime.delete(command);
  }

  list(): Array<{ command: string; extensionId: string }> {
    const all = new Map([...this.declared, ...this.runtime]);
    return [...all].map(([command, extensionId]) => ({ command, extensionId }));
  }
}
