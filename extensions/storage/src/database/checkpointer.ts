/**
 * A worker thread that checkpoints the SQLite WAL into the database file on its own connection, so
 * the fsync a checkpoint needs never stalls the kernel's event loop (the main connection sets
 * `wal_autocheckpoint = 0`). PASSIVE checkpoints wait for no one and block no reader or writer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Sqlite from 'better-sqlite3';

const { path, intervalMs, busyTimeoutMs } = workerData as { path: string; intervalMs: number; busyTimeoutMs: number };
const db = new Sqlite(path, { timeout: busyTimeoutMs });
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or closing: the next tick tries again.
  }
}, intervalMs);

parentPort!.on('message', (message: string) => {
  if (message !== 'close') return;
  clearInterval(timer);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch {
    // A reader still holds the WAL; SQLite checkpoints it when the last connection closes.
  }
  db.close();
  parentPort!.postMessage('closed');
});
