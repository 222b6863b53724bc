import { CancellationToken, type Remote } from '@aion/extension-api';

/** Builds an object whose methods forward over RPC; a trailing CancellationToken becomes the call's token. */
export function createRemoteProxy<T extends object>(
  methods: string[],
  call: (method: string, args: unknown[], token?: CancellationToken) => Promise<unknown>,
): Remote<T> {
  const proxy: Record<string, unknown> = {};
  for (const method of methods) {
    proxy[method] = (...args: unknown[]) => {
      const last = args[args.length - 1];
      if (args.length > 0 && CancellationToken.is(last)) return call(method, args.slice(0, -1), last);
      return call(method, args);
    };
  }
  return Object.freeze(proxy) as Remote<T>;
}

/** Calls `fn` with `args` padded to its declared arity, then the token: the token is always last. */
export function callWithToken(target: object, fn: (...a: unknown[]) => unknown, args: unknown[], token: CancellationToken): unknown {
  const arity = Math.max(fn.length - 1, args.length);
  const padded = args.length < arity ? [...args, ...new Array(arity - args.length).fill(undefined)] : args;
  return fn.apply(target, [...padded, token]);
}

/** Names of the callable members of an API object, including those on its prototype chain. */
export function methodNames(api: unknown): string[] {
  if (typeof api !== 'object' || api === null) return [];
  const names = new Set<string>();
  for (let o: object | null = api; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const key of Object.getOwnPropertyNames(o)) {
      if (key !== 'constructor' && typeof (api as Record<string, unknown>)[key] === 'function') names.add(key);
    }
  }
  return [...names];
}
