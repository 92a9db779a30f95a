/**
 * wasm-dso's embedding API: a ModuleHost loads WebAssembly DSO modules and
 * libraries and links them ld.so-style against the host's symbol table.
 */
export { ModuleHost, MOD_DSO_VERSION, SessionMemoryAccount } from "./modules/module-host.js";
export type { SessionInstances, SessionMemoryApi } from "./modules/session-instances.js";
export {
  DEFAULT_CAPABILITIES,
  DEFAULT_CPU_BUDGET_MS,
  DEFAULT_MEMORY_CAP_PAGES,
  DEFAULT_POLICY,
} from "./modules/policy.js";
export type { FaultPolicy, Preopen, UnitPolicy } from "./modules/policy.js";
export type {
  BindingInfo,
  LoadedUnitInfo,
  LogPriority,
  ModuleHostOptions,
  ModuleSet,
  PreparedLoad,
  SessionInstancesMode,
  SymbolInfo,
  Tracer,
} from "./modules/module-host.js";
export { DsoError, ErrorCodes, isDsoError } from "./errors.js";
export type { ErrorCode } from "./errors.js";
export { HOST_SYMBOLS } from "./abi/host-symbols.js";
export { MODULE_HOST_V8_FLAGS, tuneHeapForModuleChurn } from "./system/heap.js";
export type { ActiveCommand, HostSymbol } from "./abi/host-symbols.js";
export { HandlerResults, MODULE_API_VERSION, Phases } from "./modules/module-api.js";
export type { CommandHandler, DirectiveHandler, EngineModule, SessionState } from "./modules/module-api.js";
