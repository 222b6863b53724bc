import { randomUUID } from 'node:crypto';
import { access, mkdir, readFile, rmdir, writeFile, constants } from 'node:fs/promises';
import { join } from 'node:path';

const CGROUP_MOUNT = '/sys/fs/cgroup';

export interface CgroupSupport {
  /** Whether a memory limit can be enforced on skill processes. */
  available: boolean;
  /** Why not, or where the per-process groups go. */
  reason: string;
  /** The delegated cgroup v2 directory under which each process gets its own group. */
  parent?: string;
}

/**
 * Finds a cgroup v2 directory where this process may create child groups with the memory
 * controller: `preferred` when given, else the process's own group. It changes nothing outside
 * that directory: the host process is never moved between groups.
 */
export async function detectCgroupSupport(preferred?: string): Promise<CgroupSupport> {
  if (process.platform !== 'linux') return { available: false, reason: 'cgroups exist only on Linux' };
  try {
    await access(join(CGROUP_MOUNT, 'cgroup.controllers'));
  } catch {
    return { available: false, reason: `cgroup v2 is not mounted at ${CGROUP_MOUNT} (cgroup v1 or none)` };
  }
  let parent = preferred;
  if (!parent) {
    const own = (await readFile('/proc/self/cgroup', 'utf8')).split('\n').find((line) => line.startsWith('0::'));
    if (!own) return { available: false, reason: 'this process is not in a cgroup v2 group' };
    parent = join(CGROUP_MOUNT, own.slice(3).trim());
  }
  try {
    const controllers = (await readFile(join(parent, 'cgroup.subtree_control'), 'utf8')).split(/\s+/);
    if (!controllers.includes('memory')) return { available: false, reason: `the memory controller is not delegated to children of ${parent}` };
    await access(parent, constants.W_OK);
  } catch {
    return { available: false, reason: `${parent} is not a writable cgroup v2 directory` };
  }
  const probe = join(parent, `aion-probe-${randomUUID()}`);
  try {
    await mkdir(probe);
    await writeFile(join(probe, 'memory.max'), String(64 * 1024 * 1024));
  } catch {
    return { available: false, reason: `cannot create a memory-limited group under ${parent}` };
  } finally {
    await rmdir(probe).catch(() => {});
  }
  return { available: true, reason: `memory limits through cgroup v2 groups under ${parent}`, parent };
}

/** One process's cgroup: created before it starts, killed and removed after it ends. */
export class SkillCgroup {
  private constructor(readonly path: string) {}

  static async create(parent: string, memoryBytes: number): Promise<SkillCgroup> {
    const path = join(parent, `aion-skill-${randomUUID()}`);
    await mkdir(path);
    await writeFile(join(path, 'memory.max'), String(memoryBytes));
    await writeFile(join(path, 'memory.swap.max'), '0').catch(() => {});
    return new SkillCgroup(path);
  }

  /** The processes' own shell moves itself here and then execs the skill, so nothing runs outside the limit. */
  wrap(command: string, args: readonly string[]): { command: string; args: string[] } {
    return { command: '/bin/sh', args: ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.path, command, ...args] };
  }

  async oomKilled(): Promise<boolean> {
    try {
      const events = await readFile(join(this.path, 'memory.events'), 'utf8');
      return /^oom_kill [1-9]/m.test(events);
    } catch {
      return false;
    }
  }

  /** Kills whatever is left in the group, including processes that left the process group, then removes it. */
  async destroy(): Promise<void> {
    await writeFile(join(this.path, 'cgroup.kill'), '1').catch(() => {});
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await rmdir(this.path);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
}
