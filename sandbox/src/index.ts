export { SandboxError, SandboxErrorCodes, isSandboxError, type SandboxErrorCode, type SandboxDiagnostic } from './errors.js';
export {
  WasmEngine,
  type WasmEngineOptions,
  type WasmLimits,
  type WasmRunRequest,
  type WasmRunResult,
  type CompiledModule,
} from './wasm/wasm-engine.js';
export {
  inspectModule,
  validateModule,
  moduleHash,
  WASM_PAGE_BYTES,
  DEFAULT_MODULE_LIMITS,
  MODULE_LIMIT_CEILINGS,
  type ModuleInfo,
  type ModuleMemory,
  type ModuleTable,
  type ModuleCounts,
  type ModuleImport,
  type ModuleExport,
  type ModuleLimits,
  type ValidateOptions,
} from './wasm/module-inspector.js';
export type { WorkerPoolStats as WasmEngineStats } from './wasm/worker-pool.js';
export { NetworkPolicy, isPrivateAddress } from './wasm/network-policy.js';
export { HostCallStatus, HOST_CALL_LIMITS } from './wasm/protocol.js';
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
export { visibleDeviceEnvironment, type AcceleratorSelection } from './process/visible-devices.js';
