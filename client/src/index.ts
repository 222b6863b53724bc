export { AionClient, type AionClientOptions } from './client.js';
export { AionApiError, ClientErrorCodes, isAionApiError } from './errors.js';
export { MemoryTokenStore, type ApiKey, type Me, type StoredTokens, type TokenPair, type TokenStore } from './auth.js';
export { MemorySessionStore, type LocalSessionStore, type SyncAnswer, type SyncPush } from './sessions.js';
export type { SubmitOptions, StreamOptions } from './tasks.js';
export type { RetryOptions } from './transport.js';
export type { HealthReport } from './resources.js';
export type { AiDocsJob, AiDocsKind, AiDocsRequest, AiDocsResults, PreviewPlatform, PreviewStatus, Project, WaitOptions } from './workspace.js';
export type * from './types.js';
export {
  DeviceConnection,
  DevicesApi,
  DeviceErrorCodes,
  DEVICE_CONNECT_PATH,
  DEVICE_PROTOCOL_VERSION,
  type DeviceCall,
  type DeviceCaller,
  type DeviceChatCall,
  type DeviceChatEvent,
  type DeviceModel,
  type DeviceConnectionOptions,
  type DeviceLogger,
  type DeviceSkill,
  type DeviceSocket,
  type DeviceState,
  type HubDevice,
} from './device.js';
