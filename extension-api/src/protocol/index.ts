/**
 * The kernel <-> extension-host contract, one slice per capability (`capabilities/`): each slice holds
 * the messages a host sends and the kernel answers (`kernel`) and those the kernel sends and every host
 * answers (`host`). Only data crosses: JSON values, stream markers and cancellation.
 */
export * from './capabilities/slice.js';
export * from './capabilities/lifecycle.js';
export * from './capabilities/commands.js';
export * from './capabilities/extensionApis.js';
export * from './capabilities/contributions.js';
export * from './capabilities/hooks.js';
export * from './capabilities/events.js';
export * from './capabilities/routes.js';
export * from './capabilities/secrets.js';
export * from './capabilities/realtime.js';
export * from './capabilities/cluster.js';
export { StreamBridge, StreamProtocol, isStreamMarker, mapStreams, type StreamMarker } from './streams.js';
export { AION_RPC_ERROR, RpcEndpoint, toResponseError, fromRpcError, fromWireError, type WireError } from './endpoint.js';
export * from './transports.js';
