import { fileURLToPath } from 'node:url';

export { ExtensionHost } from './extensionHost.js';
export { normalizeRoute } from './capabilities/routes.js';
export { createRemoteProxy, callWithToken, methodNames } from './remoteProxy.js';
export { EGRESS_SOCKET_ENV } from './networkIsolation.js';

/** The file the kernel forks for `shared` and `dedicated` hosts. */
export const hostEntryPath = fileURLToPath(new URL('./main.js', import.meta.url));
export { REQUEST_ID_KEY, enableCallContext, currentCallContext, contextFrom, inClientSpan, runInCallContext } from './callContext.js';
// The transports live with the protocol, in @aion/extension-api/protocol.
export {
  BatchingIpcReader,
  BatchingIpcWriter,
  createInMemoryConnectionPair,
  createFrameConnection,
  DEFAULT_MAX_FRAME_BYTES,
  FrameError,
  FrameReader,
  FrameWriter,
  type FrameChannel,
  type FrameConnection,
} from '@aion/extension-api/protocol';
