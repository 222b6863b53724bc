import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import { AionError } from '@aion/extension-api';
import { FILE_LIST, generateSigningKey, signPack, SIGNATURE_FILE } from './packs/signing.js';
import type { SkillsService } from './service.js';
import { LOCAL_PRINCIPAL } from './types.js';

const LOUD = '!'.repeat(72);

/** The `aion skills …` and `aion keys generate` commands; each returns the text the CLI prints. */
export function cliCommands(service: () => SkillsService) {
  return {
    async install(options: { pack?: string; 'allow-unsigned'?: boolean }): Promise<string> {
      if (!options.pack) throw new AionError('BAD_REQUEST', 'usage: aion skills install <folder or .tgz> [--allow-unsigned]');
      const allowUnsigned = options['allow-unsigned'] === true;
      const r = await service().installPack(resolve(options.pack), { allowUnsigned });
      const lines: string[] = [];
      if (allowUnsigned) lines.push(LOUD, '!! --allow-unsigned: signature checks are OFF for this install. Development only.', LOUD);
      for (const w of r.warnings) lines.push(`WARNING: ${w}`);
      lines.push(
        `${r.replaced ? 'replaced' : 'installed'} ${r.name} ${r.version} (${r.signed ? `signed by ${r.signer} ${r.keyId}` : 'UNSIGNED'}): ${r.skills.length} skills`,
      );
      for (const id of r.skills) lines.push(`  ${id}`);
      return lines.join('\n');
    },

    async remove(options: { name?: string; quarantined?: boolean }): Promise<string> {
      if (!options.name) throw new AionError('BAD_REQUEST', 'usage: aion skills remove <pack> [--quarantined]');
      const { removed } = await service().removePack(options.name, { quarantined: options.quarantined === true });
      if (!removed) throw new AionError('PACK_NOT_FOUND', `No ${options.quarantined ? 'quarantined entry' : 'pack'} ${options.name}.`);
      return `removed ${options.name}`;
    },

    async list(options: { json?: boolean }): Promise<string> {
      const s = service();
      const packs = await s.listPacks();
      const summaries = s.search({});
      const skills = summaries.map((x) => ({
        id: x.id,
        title: x.title,
        runtime: x.runtime,
        enabled: x.enabled,
        state: x.state,
        source: x.source,
        ...(x.quarantine ? { quarantine: x.quarantine } : {}),
      }));
      const stateOf = (id: string) => {
        const summary = summaries.find((x) => x.id === id);
        return summary?.quarantine ? ` (QUARANTINED: ${summary.quarantine.reason})` : summary?.state === 'disabled' ? ' (disabled)' : '';
      };
      if (options.json) return JSON.stringify({ ...packs, skills, mcpServers: s.mcpClients.status() }, null, 2);
      const lines: string[] = ['Packs:'];
      if (!packs.installed.length) lines.push('  (none)');
      for (const p of packs.installed) {
        lines.push(`  ${p.name} ${p.version ?? ''} ${p.state === 'loaded' ? (p.signed ? `signed by ${p.signer}` : 'UNSIGNED') : `INVALID: ${p.error}`}`);
        for (const id of p.skills) lines.push(`    ${id}${stateOf(id)}`);
      }
      lines.push('Quarantined:');
      if (!packs.quarantined.length) lines.push('  (none)');
      for (const q of packs.quarantined) lines.push(`  ${q.id}  ${q.code}: ${q.reason}`);
      const other = skills.filter((x) => (x.source as { kind: string }).kind !== 'pack');
      if (other.length) {
        lines.push('Other skills:');
        for (const x of other) lines.push(`  ${x.id} (${x.runtime}${x.state === 'enabled' ? '' : `, ${x.state}`})`);
      }
      return lines.join('\n');
    },

    async run(options: { id?: string; args?: string }): Promise<string> {
      if (!options.id) throw new AionError('BAD_REQUEST', "usage: aion skills run <id> --args '{...}'");
      let args: unknown = {};
      if (options.args) {
        try {
          args = JSON.parse(options.args);
        } catch (err) {
          throw new AionError('BAD_REQUEST', `--args is not JSON: ${(err as Error).message}`);
        }
      }
      await service().mcpClients.settled();
      const { result } = await service().execute(options.id, args, { principal: LOCAL_PRINCIPAL, via: 'cli' });
      return JSON.stringify(result, null, 2);
    },

    async sign(options: { dir?: string; key?: string; out?: string }): Promise<string> {
      if (!options.dir || !options.key) throw new AionError('BAD_REQUEST', 'usage: aion skills sign <dir> --key <private key> [--out pack.tgz]');
      const dir = resolve(options.dir);
      const { keyId, files, fileList } = await signPack(dir, await readFile(resolve(options.key), 'utf8'));
      const lines = [
        `signed ${fileList.pack} ${fileList.packVersion} with key ${keyId}: ${files.length} files listed in ${FILE_LIST}, signature in ${SIGNATURE_FILE}`,
      ];
      if (options.out) {
        const out = resolve(options.out);
        await tar.c({ gzip: true, file: out, cwd: dir, portable: true, noMtime: true }, [...files, FILE_LIST, SIGNATURE_FILE]);
        lines.push(`wrote ${out}`);
      }
      return lines.join('\n');
    },

    async keysGenerate(options: { out?: string; name?: string }): Promise<string> {
      const dir = resolve(options.out ?? '.');
      const name = options.name ?? 'aion-signing';
      if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new AionError('BAD_REQUEST', '--name may hold letters, digits, _, . and - only');
      const key = generateSigningKey();
      await mkdir(dir, { recursive: true });
      const privatePath = join(dir, `${name}.key`);
      await writeFile(privatePath, key.privateKeyPem, { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
        throw new AionError('CONFLICT', err.code === 'EEXIST' ? `${privatePath} exists; choose another --name or --out` : err.message);
      });
      await chmod(privatePath, 0o600);
      await writeFile(join(dir, `${name}.pub`), key.publicKeyPem);
      return [
        `key ${key.keyId}`,
        `private key: ${privatePath} (keep it secret; sign with: aion skills sign <dir> --key ${privatePath})`,
        `public key:  ${join(dir, `${name}.pub`)}`,
        'trust it on a host with, in aion.config.json:',
        `  "extensions": { "aion.skills": { "trustedKeys": [{ "name": "${name}", "publicKey": "${key.publicKeyLine}" }] } }`,
      ].join('\n');
    },
  };
}
