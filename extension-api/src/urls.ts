/**
 * A connection URL fit for logs and error messages: its password replaced with `***`
 * (`postgres://aion:secret@db/aion` → `postgres://aion:***@db/aion`). A URL that does not parse keeps
 * everything but what looks like `user:password@`.
 */
export function maskUrlPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
  }
}
