/**
 * The contract between the router and a model provider extension, documented in
 * `@aion/provider-kit` (`provider-kit/src/types.ts`). Re-exported here for the router's own modules
 * and for `@aion/ext-router/providers`.
 */
export type {
  ChatMessage,
  ChatRequest,
  ChatRole,
  EmbedRequest,
  EmbedResult,
  FinishReason,
  ModelInfo,
  ModelOwner,
  ProviderContribution,
  ProviderErrorCode,
  ProviderErrorEvent,
  ProviderEvent,
  ProviderImplementation,
  ProviderModel,
  ProviderResidency,
  ProviderRoute,
  ProviderTier,
  ToolCall,
  ToolChoice,
  ToolDefinition,
} from '@aion/provider-kit';
