import { MemoryTaskStore, type TaskStore } from './taskStore.js';

/** The task store: the `aion.storage` extension when it is installed, else this process's memory. */
export async function openTaskStore(log: (level: 'info' | 'warn', message: string) => void): Promise<TaskStore> {
  log('info', 'tasks, idempotency keys and usage are kept in memory: install aion.storage to keep them across restarts and share them between instances');
  return new MemoryTaskStore();
}
