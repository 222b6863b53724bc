export { SandboxError, SandboxErrorCodes, isSandboxError, type SandboxErrorCode, type SandboxDiagnostic } from './errors.js';
export {
  WasmEngine,
  type WasmEngineOptions,
  type WasmLimits,
  type WasmRunRequest,
  type WasmRunResult,
  type CompiledModule,
} from './wasm/wasm-engine.js';
export { inspectModule, validateModule, moduleHash, WASM_PAGE_BYTES, type ModuleInfo, type ModuleMemory, type ModuleImport, type ModuleExport, type ValidateOptions } from './wasm/module-inspector.js';
export { NetworkPolicy, isPrivateAddress } from './wasm/network-policy.js';
export { HostCallStatus } from './wasm/protocol.js';
export type { GuestHttpRequest, GuestHttpResponse } from './wasm/guest-fetch.js';
export {
  ProcessEngine,
  type ProcessEngineOptions,
  type ProcessSkill,
  type ProcessLimits,
  type ProcessCallRequest,
  type ProcessCallResult,
  type ToolContent,
} from './process/process-engine.js';
export { detectCgroupSupport, type CgroupSupport } from './process/cgroup.js';
