// The guest's view of the host symbol table (host/abi/host-symbols.ts), one
// explicit @external per symbol so renaming a file never changes the ABI.
// test/unit/abi/sdk-abi.test.ts compiles this file and checks every import
// against the host's table. `abort`, `trace` and `seed` are AssemblyScript's own
// imports; the host provides them too.

@external("env", "pr_time_now")
export declare function pr_time_now(): f64;

@external("env", "pr_log_debug")
export declare function pr_log_debug(level: i32, msg: string): void;

@external("env", "pr_trace_msg")
export declare function pr_trace_msg(channel: string, level: i32, msg: string): void;

@external("env", "pr_cmd_arg")
export declare function pr_cmd_arg(): string;

@external("env", "pr_cmd_argc")
export declare function pr_cmd_argc(): i32;

@external("env", "pr_cmd_argv")
export declare function pr_cmd_argv(index: i32): string;

@external("env", "pr_response_add")
export declare function pr_response_add(code: string, msg: string): void;

@external("env", "pr_response_add_err")
export declare function pr_response_add_err(code: string, msg: string): void;

@external("env", "pr_feat_add")
export declare function pr_feat_add(feat: string): void;

@external("env", "pr_help_add")
export declare function pr_help_add(command: string, text: string): void;

@external("env", "pr_session_user")
export declare function pr_session_user(): string;

@external("env", "pr_session_remote_addr")
export declare function pr_session_remote_addr(): string;

@external("env", "pr_session_disconnect")
export declare function pr_session_disconnect(details: string): void;

@external("env", "pr_session_cwd")
export declare function pr_session_cwd(): string;

@external("env", "pr_cmd_path")
export declare function pr_cmd_path(): string;

@external("env", "pr_xfer_direction")
export declare function pr_xfer_direction(): string;

@external("env", "pr_xfer_bytes")
export declare function pr_xfer_bytes(): f64;

@external("env", "pr_xfer_file_size")
export declare function pr_xfer_file_size(): f64;

@external("env", "pr_xfer_duration_ms")
export declare function pr_xfer_duration_ms(): f64;

@external("env", "pr_xfer_complete")
export declare function pr_xfer_complete(): i32;

@external("env", "pr_shared_get")
export declare function pr_shared_get(key: string): string;

@external("env", "pr_shared_version")
export declare function pr_shared_version(key: string): f64;

@external("env", "pr_shared_set")
export declare function pr_shared_set(key: string, value: string, cas: f64): i32;

@external("env", "pr_shared_delete")
export declare function pr_shared_delete(key: string, cas: f64): i32;

@external("env", "pr_shared_add")
export declare function pr_shared_add(key: string, delta: f64): f64;

@external("env", "pr_ctrls_register")
export declare function pr_ctrls_register(action: string, desc: string): i32;

@external("env", "pr_ctrls_set_module_acls")
export declare function pr_ctrls_set_module_acls(): i32;

@external("env", "pr_ctrls_add_response")
export declare function pr_ctrls_add_response(msg: string): void;
