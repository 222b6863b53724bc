/** Notices packs added, changed or removed in the packs folder, and asks for one reload per burst of changes. */
import { watch } from 'chokidar';
import type { Disposable, Logger } from '@aion/extension-api';

const DEBOUNCE_MS = 150;
/** A safety net for file systems that do not report changes. */
const POLL_MS = 5_000;

export function watchPacks(packsDir: string, reload: () => Promise<void>, logger: Logger): Disposable {
  let debounce: NodeJS.Timeout | undefined;
  const trigger = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void reload().catch((err) => logger.warn('reloading packs failed', { error: String(err) })), DEBOUNCE_MS);
  };
  // chokidar: a pack folder copied in file by file, or renamed into place, is one burst of events.
  const watcher = watch(packsDir, { ignoreInitial: true, persistent: false, depth: 3 }).on('all', trigger);
  watcher.on('error', (err) => logger.warn('watching the packs folder failed; polling it instead', { error: String(err) }));
  const poll = setInterval(trigger, POLL_MS);
  poll.unref();
  return {
    dispose: () => {
      clearTimeout(debounce);
      clearInterval(poll);
      void watcher.close();
    },
  };
}
