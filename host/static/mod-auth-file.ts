/**
 * mod_auth_file.c, compiled in: the AuthUserFile directive and the password
 * check against it. The directive only records the path; the daemon reads
 * the file and hands its text to `load`, so this stays free of I/O.
 */
import { findUser, parseAuthUserFile } from "../auth/auth-user-file.js";
import type { AuthUser } from "../auth/auth-user-file.js";
import { passwordChecker } from "../auth/password-check.js";
import type { EngineModule } from "../modules/module-api.js";
import type { AuthSource } from "./mod-auth.js";
import { directiveError, param } from "../config/directives.js";

export class AuthUserFile implements AuthSource {
  #path: string | undefined;
  #users: readonly AuthUser[] = [];

  /** The AuthUserFile path, once the directive has been read. */
  get path(): string | undefined {
    return this.#path;
  }

  setPath(path: string): void {
    this.#path = path;
  }

  /** Takes the file's text; returns one warning per skipped line, for the log. */
  load(text: string): readonly string[] {
    const { users, warnings } = parseAuthUserFile(text, this.#path ?? "AuthUserFile");
    this.#users = users;
    return warnings;
  }

  /** authfile_getpwuid's name: the first entry with that uid (mod_ls.c's owner column). */
  nameOf(uid: number): string | undefined {
    return this.#users.find((entry) => entry.uid === uid)?.name;
  }

  /** authfile_getpwnam: the first entry of that name. */
  lookup(user: string): AuthUser | undefined {
    return findUser(this.#users, user);
  }

  /** authfile_chkpass: crypt(3) of the password equal to the entry's hash, computed off the event loop. */
  check(account: AuthUser, password: string): Promise<boolean> {
    return passwordChecker().verify(password, account.hash);
  }

  /**
   * A hash a password check costs as much as a real user's: mod_delay.c
   * times one wrong password against it at startup, so that its first
   * answers already take as long as a known user's. undefined without users.
   */
  sampleHash(): string | undefined {
    return this.#users[0]?.hash;
  }
}

export interface AuthFileModule {
  readonly module: EngineModule;
  readonly authFile: AuthUserFile;
}

export function createAuthFileModule(): AuthFileModule {
  const authFile = new AuthUserFile();
  const module: EngineModule = {
    name: "mod_auth_file.c",
    kind: "static",
    commands: [],
    siteCommands: [],
    directives: [
      {
        name: "AuthUserFile",
        run: (d) => {
          // proftpd also takes optional user/ID filters (up to 7 parameters);
          // dsod has none, so only the path is accepted.
          if (d.argv.length !== 2) throw directiveError("wrong number of parameters");
          const path = param(d, 1);
          if (!path.startsWith("/")) {
            throw directiveError(`unable to use relative path for ${d.name} '${path}'.`);
          }
          authFile.setPath(path);
        },
      },
    ],
    features: [],
    help: [],
  };
  return { module, authFile };
}
