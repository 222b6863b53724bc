/**
 * Testing utilities for provider authors (`@aion/provider-kit/testing`): a fake vendor server that
 * records requests and misbehaves on purpose, and the conformance suite every provider runs.
 */
export * from './fakeServer.js';
export { collect, describeProviderConformance, last, tokens, type ConformanceReply, type ConformanceSubject } from './conformance.js';
