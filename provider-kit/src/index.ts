export type * from './types.js';
export { ProviderFailure, UpstreamCall, upstreamEvents, failureForStatus, retryAfterMs, vendorMessage, type ResponseHeaders, type UpstreamRequest, type UpstreamResponse } from './upstream.js';
