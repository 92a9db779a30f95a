/**
 * Runs a configuration the way proftpd's parser does: directive by directive,
 * in order, each looked up among the modules in the engine at that moment. So
 * after `LoadModule mod_x.c` the directives mod_x.c registers are known, and not
 * before; `<IfModule>` is evaluated when the parser reaches it (the FAQ's guard
 * around LoadModule works); `Include` reads files where it stands.
 *
 * Every failure is a ConfigError naming the directive, the reason, the line and
 * the file that holds it (also inside an Include): proftpd's
 * `fatal: <Directive>: <reason> on line N of '<file>'`.
 *
 * Sections must nest and close: proftpd silently ignores a stray
 * `</IfModule>` and never notices a used `<IfModule>` left open; dsod refuses
 * both, in the words proftpd uses for its other sections.
 */
import path from "node:path";
import { isDsoError, messageOf } from "../errors.js";
import { DirectiveCall } from "../modules/directive-call.js";
import type { ConfigSection, DirectiveHandler, EngineModule } from "../modules/module-api.js";
import { ConfigError, lexConfig } from "./lexer.js";
import type { ConfigLine } from "./lexer.js";
import { formatSuggestions, suggestDirectives } from "./suggest.js";

/** Where configuration text comes from: the filesystem for dsod, anything for tests. */
export interface ConfigSource {
  read(file: string): string;
  /** The files an `Include` argument names, sorted; an argument without wildcards names itself. */
  expand(pattern: string): string[];
}

export interface ConfigRunOptions {
  readonly source: ConfigSource;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The modules in the engine now, oldest first (re-read after every directive). */
  readonly modules: () => readonly EngineModule[];
  readonly isLoaded: (name: string) => boolean;
  /** Lines proftpd logs while parsing (debug and "Did you mean" hints). */
  readonly log: (priority: "notice" | "debug", message: string) => void;
}

/** strerror(3)'s words for the failures reading a config file meets, as proftpd prints them. */
const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  ENXIO: "No such device or address",
  ELOOP: "Too many levels of symbolic links",
  EFBIG: "File too large",
};

/** proftpd stops following Includes at a depth that only a loop reaches. */
const MAX_INCLUDE_DEPTH = 64;

/** Sections proftpd has that dsod does not serve, by their opening tag in lower case: directives inside them are refused. */
const UNSERVED_SECTIONS: ReadonlyMap<string, string> = new Map([
  ["<global", "<Global>"],
  ["<virtualhost", "<VirtualHost>"],
  ["<anonymous", "<Anonymous>"],
  ["<class", "<Class>"],
  ["<ifdefine", "<IfDefine>"],
]);

/**
 * The sections dsod serves and the directives each admits (lower case); any
 * other directive inside is refused as proftpd's CHECK_CONF refuses it. The
 * directives' own handlers check the rest (AllowUser outside <Limit>).
 */
const SERVED_SECTIONS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ["<Directory>", new Set(["<limit>", "</directory>", "allowall", "denyall"])],
  [
    "<Limit>",
    new Set(["</limit>", "order", "allowuser", "denyuser", "allowgroup", "denygroup", "allowall", "denyall"]),
  ],
]);

const IF_MODULE = "<IfModule>";

interface Frame {
  readonly lines: readonly ConfigLine[];
  index: number;
  readonly depth: number;
}

function findDirective(modules: readonly EngineModule[], name: string): DirectiveHandler | undefined {
  const wanted = name.toLowerCase();
  // proftpd's stash puts the most recently loaded module's handler first.
  for (let i = modules.length - 1; i >= 0; i--) {
    const handler = (modules[i] as EngineModule).directives.find((d) => d.name.toLowerCase() === wanted);
    if (handler !== undefined) return handler;
  }
  return undefined;
}

export class ConfigRunner {
  readonly #options: ConfigRunOptions;
  #directivesRun = 0;
  /** The open sections, <IfModule> included, outermost first. */
  readonly #sections: ConfigSection[] = [];

  constructor(options: ConfigRunOptions) {
    this.#options = options;
  }

  /** Runs the main configuration file. */
  run(file: string): void {
    const stack: Frame[] = [{ lines: this.#lex(file, undefined), index: 0, depth: 0 }];
    while (stack.length > 0) {
      const frame = stack.at(-1) as Frame;
      const line = frame.lines[frame.index++];
      if (line === undefined) {
        stack.pop();
        continue;
      }
      const included = this.#step(line, frame, stack.length === 1);
      if (included !== undefined) stack.push(...included);
    }
    this.#checkAllClosed(file);
  }

  /** A section still open at the end: proftpd's words for an <IfModule> that a skip found unclosed, or main.c's. */
  #checkAllClosed(file: string): void {
    const open = this.#sections.at(-1);
    if (open === undefined) return;
    if (open.name === IF_MODULE) {
      throw new ConfigError("<IfModule>: unclosed <IfModule> context", open.file, open.line, { directive: IF_MODULE });
    }
    throw new ConfigError(`error processing configuration file '${file}': unclosed configuration section`, file, 0, {
      directive: open.name,
      details: [`${open.name} opened on line ${open.line} of '${open.file}' is not closed`],
    });
  }

  /** The innermost section that is a configuration context (not <IfModule>). */
  #context(): ConfigSection | undefined {
    return this.#sections.findLast((s) => s.name !== IF_MODULE);
  }

  #contextName(): string {
    return this.#context()?.name ?? "server config";
  }

  #notAllowed(name: string, line: ConfigLine): ConfigError {
    return new ConfigError(`${name}: directive not allowed in ${this.#contextName()} context`, line.file, line.line, {
      directive: name,
    });
  }

  /**
   * A closing tag for `section` while an <IfModule> opened inside that
   * section is still open: the <IfModule> is what is unclosed.
   */
  #checkNoOpenIfModule(section: string, line: ConfigLine): void {
    if (this.#sections.at(-1)?.name === IF_MODULE && this.#context()?.name === section) {
      throw new ConfigError("<IfModule>: unclosed <IfModule> context", line.file, line.line, { directive: IF_MODULE });
    }
  }

  #open(name: string, line: ConfigLine): void {
    this.#sections.push({ name, args: line.args, file: line.file, line: line.line });
  }

  #lex(file: string, at: ConfigLine | undefined): ConfigLine[] {
    let text: string;
    try {
      text = this.#options.source.read(file);
    } catch (cause) {
      const reason = STRERROR[(cause as NodeJS.ErrnoException).code ?? ""] ?? messageOf(cause);
      if (at === undefined)
        throw new ConfigError(`unable to read configuration file '${file}': ${reason}`, file, 0, { cause });
      throw new ConfigError(`Include: error including '${file}': ${reason}`, at.file, at.line, {
        cause,
        directive: "Include",
      });
    }
    return lexConfig(text, file, this.#options.env);
  }

  /** Runs one line; returns frames to push for an Include. */
  #step(line: ConfigLine, frame: Frame, mainFile: boolean): Frame[] | undefined {
    const lower = line.name.toLowerCase();
    if (lower === "<ifmodule") {
      this.#ifModule(line, frame);
      return undefined;
    }
    if (lower === "</ifmodule>") {
      if (this.#sections.at(-1)?.name !== IF_MODULE) throw this.#notAllowed("</IfModule>", line);
      this.#sections.pop();
      return undefined;
    }
    const unserved = UNSERVED_SECTIONS.get(lower);
    if (unserved !== undefined) {
      this.#open(unserved, line);
      return undefined;
    }
    const unservedEnd = lower.startsWith("</")
      ? UNSERVED_SECTIONS.get(lower.slice(0, -1).replace("</", "<"))
      : undefined;
    if (unservedEnd !== undefined) {
      this.#checkNoOpenIfModule(unservedEnd, line);
      if (this.#sections.at(-1)?.name !== unservedEnd) throw this.#notAllowed(`</${unservedEnd.slice(1)}`, line);
      this.#sections.pop();
      return undefined;
    }
    if (lower === "include") return this.#include(line, frame);
    const first = mainFile && this.#directivesRun === 0;
    this.#directivesRun++;
    // The lexer names an opening tag `<Limit`; its handler is `<Limit>`, as in proftpd's conftab.
    const opening = line.name.startsWith("<") && !line.name.startsWith("</");
    const lookup = opening ? `${line.name}>` : line.name;
    const handler = findDirective(this.#options.modules(), lookup);
    if (handler === undefined) {
      const known = this.#options.modules().flatMap((m) => m.directives.map((d) => d.name));
      // proftpd logs its "Did you mean" hints after the fatal line; they travel as details.
      throw new ConfigError(`unknown configuration directive '${lookup}'`, line.file, line.line, {
        directive: lookup,
        details: formatSuggestions(suggestDirectives(lookup, known)),
      });
    }
    if (handler.name.startsWith("</")) this.#checkNoOpenIfModule(`<${handler.name.slice(2)}`, line);
    const context = this.#context();
    if (context !== undefined && !(SERVED_SECTIONS.get(context.name)?.has(handler.name.toLowerCase()) ?? false)) {
      throw this.#notAllowed(handler.name, line);
    }
    const command = new DirectiveCall([lookup, ...line.args]);
    const sections = this.#sections.filter((s) => s.name !== IF_MODULE);
    try {
      handler.run(command, { file: line.file, line: line.line, first, sections });
    } catch (cause) {
      if (cause instanceof ConfigError) throw cause;
      const reason =
        command.errors.length > 0 ? command.errors.join("; ") : isDsoError(cause) ? cause.message : String(cause);
      throw new ConfigError(`${handler.name}: ${reason}`, line.file, line.line, { cause, directive: handler.name });
    }
    if (opening) this.#open(handler.name, line);
    else if (handler.name.startsWith("</")) this.#sections.pop();
    return undefined;
  }

  /** mod_core.c start_ifmodule: true sections are entered; false ones skipped to their matching end. */
  #ifModule(line: ConfigLine, frame: Frame): void {
    const arg = line.args[0] ?? "";
    const negated = arg.startsWith("!");
    const name = negated ? arg.slice(1) : arg;
    const use = this.#options.isLoaded(name) !== negated;
    // proftpd 1.3.8 prints the '!' twice here ('!!mod_x.c': mod_core.c's start_ifmodule adds one to the argument that
    // still has its own), so we keep it.
    this.#options.log(
      "debug",
      `<IfModule>: ${use ? "using" : "skipping"} '${negated ? "!" : ""}${arg}' section at line ${line.line}`,
    );
    if (use) {
      this.#open(IF_MODULE, line);
      return;
    }
    let nesting = 1;
    while (nesting > 0) {
      const next = frame.lines[frame.index++];
      if (next === undefined) {
        const last = frame.lines.at(-1) ?? line;
        throw new ConfigError("<IfModule>: unclosed <IfModule> context", last.file, last.line, {
          directive: "<IfModule>",
        });
      }
      const lower = next.name.toLowerCase();
      if (lower === "<ifmodule") nesting++;
      else if (lower === "</ifmodule>") nesting--;
    }
  }

  #include(line: ConfigLine, frame: Frame): Frame[] {
    const arg = line.args[0];
    if (arg === undefined)
      throw new ConfigError("Include: missing parameters", line.file, line.line, { directive: "Include" });
    if (frame.depth >= MAX_INCLUDE_DEPTH) {
      throw new ConfigError(
        `Include: too many levels of Include (${MAX_INCLUDE_DEPTH}), an Include loop?`,
        line.file,
        line.line,
        {
          directive: "Include",
        },
      );
    }
    const pattern = path.isAbsolute(arg) ? arg : path.join(path.dirname(line.file), arg);
    let files: string[];
    try {
      files = this.#options.source.expand(pattern);
    } catch (cause) {
      throw new ConfigError(
        `Include: error including '${pattern}': ${(cause as Error).message}`,
        line.file,
        line.line,
        {
          cause,
          directive: "Include",
        },
      );
    }
    // Frames run last-pushed first, so push the files in reverse to read them in order.
    return files.reverse().map((file) => ({ lines: this.#lex(file, line), index: 0, depth: frame.depth + 1 }));
  }
}
