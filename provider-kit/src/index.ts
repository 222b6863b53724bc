export type * from './types.js';
export {
  PROVIDER_ERROR_STATUS,
  isProviderErrorCode,
  ProviderFailure,
  UpstreamCall,
  upstreamEvents,
  upstreamRequest,
  embeddingBody,
  failureForStatus,
  retryAfterMs,
  vendorMessage,
  type ResponseHeaders,
  type UpstreamRequest,
  type UpstreamResponse,
} from './upstream.js';
export {
  PROVIDERS_CHANGED_EVENT,
  manifestModels,
  registerProvider,
  type ProviderClient,
  type ProviderConfiguration,
  type ProviderRegistration,
} from './registerProvider.js';
export {
  HttpProviderClient,
  assertChatRequest,
  parseStreamObject,
  toolArguments,
  type ApiKeySource,
  type HttpProviderConnection,
  type HttpProviderDefaults,
} from './httpClient.js';
