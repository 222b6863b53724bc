/**
 * What an operator switched and what the gatekeeper quarantined, kept across restarts in the
 * extension's storage: a skill that was turned off, or kept crashing its host, must not come back by itself.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@aion/extension-api';
import type { SkillCatalog } from './catalog.js';
import type { SkillQuarantine } from './quarantine.js';

export class SkillSwitches {
  private saves: Promise<void> = Promise.resolve();

  constructor(
    private readonly storagePath: string | undefined,
    private readonly catalog: SkillCatalog,
    private readonly quarantine: SkillQuarantine,
    private readonly logger: Logger,
  ) {}

  private file(name: string): string | undefined {
    return this.storagePath ? join(this.storagePath, name) : undefined;
  }

  async restore(): Promise<void> {
    const switches = this.file('disabled-skills.json');
    if (!switches) return;
    const ids = await readFile(switches, 'utf8')
      .then((t) => JSON.parse(t) as string[])
      .catch(() => []);
    for (const id of ids) this.catalog.setEnabled(id, false);
    this.quarantine.restore(
      await readFile(this.file('quarantined-skills.json')!, 'utf8').then(
        (t) => JSON.parse(t) as unknown,
        () => undefined,
      ),
    );
  }

  /** Written in order, one at a time; a failure is logged, never thrown at the gatekeeper. */
  saveQuarantine(): void {
    const file = this.file('quarantined-skills.json');
    if (!file) return;
    const entries = this.quarantine.entries();
    this.saves = this.saves
      .then(() => this.write(file, entries))
      .catch((err) => this.logger.warn('the skill quarantine could not be saved', { error: String(err) }));
  }

  async saveSwitches(): Promise<void> {
    const file = this.file('disabled-skills.json');
    if (file) await this.write(file, this.catalog.disabledAtRunTime());
  }

  /** Resolves once every quarantine save started so far has ended. */
  settled(): Promise<void> {
    return this.saves;
  }

  private async write(file: string, value: unknown): Promise<void> {
    await mkdir(this.storagePath!, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(value));
    await rename(tmp, file);
  }
}
