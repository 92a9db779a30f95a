/**
 * dsod's compiled-in modules, the static_modules[] of proftpd's module_glue.c.
 */
import type { OwnerNames } from "../fs/ls-format.js";
import { loginReply } from "../access/limit-reply.js";
import { SessionFilesystem } from "../fs/session-fs.js";
import type { Clock } from "../system/clock.js";
import { Scoreboard } from "../ftp/scoreboard.js";
import type { DirectiveHandler, EngineModule, SessionState } from "../modules/module-api.js";
import type { LogPriority } from "../modules/module-host.js";
import { createAuthFileModule } from "./mod-auth-file.js";
import type { AuthUserFile } from "./mod-auth-file.js";
import { createAuthModule } from "./mod-auth.js";
import type { AuthModuleOptions, AuthSettings } from "./mod-auth.js";
import type { CoreDataSettings } from "./core-data.js";
import { createCoreModule } from "./mod-core.js";
import type { CoreDaemonOptions, CoreSettings } from "./mod-core.js";
import { createFactsModule } from "./mod-facts.js";
import { createLsModule, sessionOwners } from "./mod-ls.js";
import { createDelayModule } from "./mod-delay.js";
import type { DelayModule } from "./mod-delay.js";
import { createSiteModule } from "./mod-site.js";
import { createTlsModule } from "./mod-tls.js";
import type { TlsModule } from "./mod-tls.js";
import { createXferModule } from "./mod-xfer.js";
import type { XferOptions, XferSettings } from "./mod-xfer.js";

export type { AuthSettings, AuthSource } from "./mod-auth.js";
export type { CoreSettings } from "./mod-core.js";
export type { CoreDataSettings } from "./core-data.js";
export { dataChannelSettings } from "./core-data.js";
export type { XferOptions, XferSettings } from "./mod-xfer.js";
export { AuthUserFile } from "./mod-auth-file.js";
export { serverAdmin } from "./mod-core.js";

export interface CompiledInOptions {
  /** Modules compiled in after mod_site.c, in order (mod_dso.c, mod_ctrls.c). */
  readonly extra?: readonly EngineModule[];
  /** Directives the daemon implements itself that proftpd's mod_core.c owns (TraceLog, Trace). */
  readonly coreDirectives?: readonly DirectiveHandler[];
  /** mod_xfer.c's TransferLog writer and session ending (TimeoutNoTransfer). */
  readonly xfer?: XferOptions;
  /** uid and gid → names for mod_ls.c's long listings (pr_auth_uid2name); the session's own account otherwise. */
  readonly owners?: (session: SessionState) => OwnerNames;
  /** The sessions now open, which mod_auth.c's MaxClients limits count (the daemon's FTP server fills it). */
  readonly scoreboard?: Scoreboard;
  /** User and Group are checked against these accounts; unchecked without them. */
  readonly accounts?: CoreDaemonOptions["accounts"];
  /** The daemon's log: failed logins, compatibility notices. */
  readonly log?: (priority: LogPriority, message: string) => void;
  /** pr_auth_gid2name for a logged-in account's group (undefined when unknown); none unless given. */
  readonly groupName?: AuthModuleOptions["groupName"];
  /** The port sessions connect to, named in failed-login lines; the Port directive's unless given. */
  readonly serverPort?: () => number;
  /** SessionFilesystem.open unless given. */
  readonly openFilesystem?: AuthModuleOptions["openFilesystem"];
  /** Time for mod_delay.c's waits; the system clock unless given. */
  readonly clock?: Clock;
}

export interface CompiledInModules {
  /** In `dsod -l` order, which is load order: handlers of later ones run first. */
  readonly modules: EngineModule[];
  /** What mod_core.c's directives set. */
  readonly core: CoreSettings;
  /** What mod_core.c's data-connection directives (PassivePorts, MasqueradeAddress, AllowForeignAddress, TransferLog) set. */
  readonly data: CoreDataSettings;
  /** What mod_xfer.c's directives set. */
  readonly xfer: XferSettings;
  /** What mod_auth.c's directives set. */
  readonly auth: AuthSettings;
  /** mod_auth_file.c's user file: AuthUserFile sets its path, the daemon loads its text. */
  readonly authFile: AuthUserFile;
  /** mod_tls.c, compiled in after `extra`: its settings, and the checks to run once the config is read. */
  readonly tls: TlsModule;
  /** mod_delay.c: its settings, and the DelayTable the daemon seeds at startup. */
  readonly delay: DelayModule;
}

/**
 * Builds the compiled-in modules in proftpd's `-l` order for the ones dsod
 * has: mod_core.c, mod_xfer.c, mod_auth_file.c, mod_auth.c, mod_ls.c,
 * mod_site.c, mod_delay.c, mod_facts.c, then `extra`, then mod_tls.c.
 */
export function createCompiledInModules(options: CompiledInOptions = {}): CompiledInModules {
  const log = options.log ?? (() => {});
  const core = createCoreModule(
    options.coreDirectives ?? [],
    { allowOverwrite: () => xfer.settings.allowOverwrite },
    { log, ...(options.accounts !== undefined && { accounts: options.accounts }) },
  );
  const xfer = createXferModule(core.data, options.xfer);
  const authFile = createAuthFileModule();
  const auth = createAuthModule({
    source: authFile.authFile,
    scoreboard: options.scoreboard ?? new Scoreboard(),
    openFilesystem: options.openFilesystem ?? ((root, fsOptions) => SessionFilesystem.open(root, fsOptions)),
    umask: () => ({
      umask: core.settings.umask,
      ...(core.settings.dirUmask !== undefined && { dirUmask: core.settings.dirUmask }),
    }),
    groupName: options.groupName ?? (() => undefined),
    serverPort: options.serverPort ?? (() => core.settings.port),
    loginAllowed: (account) => loginReply(core.settings.limits, account) === undefined,
    log,
  });
  const delay = createDelayModule({
    passwordChecked: auth.passwordChecked,
    log,
    ...(options.clock !== undefined && { clock: options.clock }),
  });
  const ls = createLsModule({
    serverName: () => core.settings.serverName,
    // pr_auth_uid2name asks the auth modules: the AuthUserFile's names, then the session's own account, else the number.
    owners:
      options.owners ??
      ((session) => {
        const own = sessionOwners(session);
        return { userName: (uid) => authFile.authFile.nameOf(uid) ?? own.userName(uid), groupName: own.groupName };
      }),
  });
  const site = createSiteModule(core.settings);
  const facts = createFactsModule();
  // dsod has no TLSLog: mod_tls.c's lines go to the daemon's log.
  const tls = createTlsModule(options.log === undefined ? {} : { log: options.log });
  return {
    modules: [
      core.module,
      xfer.module,
      authFile.module,
      auth.module,
      ls,
      site,
      delay.module,
      facts,
      ...(options.extra ?? []),
      tls.module,
    ],
    core: core.settings,
    data: core.data,
    xfer: xfer.settings,
    auth: auth.settings,
    authFile: authFile.authFile,
    tls,
    delay,
  };
}
