/**
 * A directive as its handler sees it: the words of the config line, and the
 * refusal reasons a guest gives with pr_response_add_err, kept in `errors`.
 * Used by the config runner and when a re-instantiated module is configured again.
 */
import type { ActiveCommand } from "../abi/host-symbols.js";

export class DirectiveCall implements ActiveCommand {
  readonly name: string;
  readonly arg: string;
  readonly argv: readonly string[];
  readonly user = undefined;
  readonly cwd = undefined;
  path = undefined;
  transfer = undefined;
  readonly errors: string[] = [];

  constructor(argv: readonly string[]) {
    this.name = argv[0] ?? "";
    this.arg = argv.slice(1).join(" ");
    this.argv = argv;
  }

  addResponse(): void {}

  addError(_code: string, message: string): void {
    this.errors.push(message);
  }
}
