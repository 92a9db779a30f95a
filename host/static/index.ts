/**
 * dsod's compiled-in modules, the static_modules[] of proftpd's module_glue.c.
 */
import type { DirectiveHandler, EngineModule } from "../modules/module-api.js";
import { createAuthFileModule } from "./mod-auth-file.js";
import type { AuthUserFile } from "./mod-auth-file.js";
import { createAuthModule } from "./mod-auth.js";
import type { AuthSettings } from "./mod-auth.js";
import { createCoreModule } from "./mod-core.js";
import type { CoreSettings } from "./mod-core.js";
import { createSiteModule } from "./mod-site.js";

export type { AuthSettings, AuthSource } from "./mod-auth.js";
export type { CoreSettings } from "./mod-core.js";
export { AuthUserFile } from "./mod-auth-file.js";
export { serverAdmin } from "./mod-core.js";

export interface CompiledInOptions {
  /** Modules compiled in after mod_site.c, in order (mod_dso.c, mod_ctrls.c). */
  readonly extra?: readonly EngineModule[];
  /** Directives the daemon implements itself that proftpd's mod_core.c owns (TraceLog, Trace). */
  readonly coreDirectives?: readonly DirectiveHandler[];
}

export interface CompiledInModules {
  /** In `dsod -l` order, which is load order: handlers of later ones run first. */
  readonly modules: EngineModule[];
  /** What mod_core.c's directives set. */
  readonly core: CoreSettings;
  /** What mod_auth.c's directives set. */
  readonly auth: AuthSettings;
  /** mod_auth_file.c's user file: AuthUserFile sets its path, the daemon loads its text. */
  readonly authFile: AuthUserFile;
}

/**
 * Builds the compiled-in modules in proftpd's `-l` order for the ones dsod
 * has: mod_core.c, mod_auth_file.c, mod_auth.c, mod_site.c, then `extra`.
 */
export function createCompiledInModules(options: CompiledInOptions = {}): CompiledInModules {
  const core = createCoreModule(options.coreDirectives ?? []);
  const authFile = createAuthFileModule();
  const auth = createAuthModule(authFile.authFile);
  const site = createSiteModule(core.settings);
  return {
    modules: [core.module, authFile.module, auth.module, site, ...(options.extra ?? [])],
    core: core.settings,
    auth: auth.settings,
    authFile: authFile.authFile,
  };
}
