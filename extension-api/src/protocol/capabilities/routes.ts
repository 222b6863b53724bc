import { RequestType } from 'vscode-jsonrpc';
import type { HttpRequestData, HttpResponseData } from '../../types.js';
import type { CallContext, ProtocolSlice } from './slice.js';

export interface HandleRouteParams {
  extensionId: string;
  route: string;
  request: HttpRequestData;
  context?: CallContext;
}

/** `aion.http`: the kernel's HTTP edge hands a request for a declared route to the host that implements it. */
export const RoutesProtocol = {
  kernel: {},
  host: {
    handle: new RequestType<HandleRouteParams, HttpResponseData, void>('$handleRoute'),
  },
} as const satisfies ProtocolSlice;
