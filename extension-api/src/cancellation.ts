export { CancellationToken, CancellationTokenSource } from 'vscode-jsonrpc';
import { CancellationToken } from 'vscode-jsonrpc';

export function isCancellationToken(value: unknown): value is CancellationToken {
  return CancellationToken.is(value);
}
