export * from './errors.js';
export * from './lifecycle.js';
export * from './event.js';
export * from './cancellation.js';
export * from './manifest.js';
export * from './types.js';
export * from './api.js';
export * from './asyncQueue.js';
/** Engine version: the value extensions put in `engines.aion`. */
export const API_VERSION = '0.1.0';
export * from './telemetry.js';
export * from './urls.js';
