/**
 * The FTP control channel's input side, as proftpd reads it: bytes become
 * lines in `pr_netio_telnet_gets2` (src/netio.c), lines become commands in
 * `pr_cmd_read` and `make_ftp_cmd` (src/main.c). Pure: no sockets here; the
 * server feeds bytes in and writes out what comes back.
 */

/** RFC 854 Telnet command bytes proftpd's reader acts on. */
const IAC = 255;
const DONT = 254;
const DO = 253;
const WONT = 252;
const WILL = 251;
const IP = 244;
const DM = 242;

const CR = 0x0d;
const LF = 0x0a;

/**
 * proftpd's default CommandBufferSize, PR_DEFAULT_CMD_BUFSZ: PATH_MAX (4096
 * on Linux) + 7. The reader fills at most one byte less (the NUL) and needs
 * room left for the LF after the CR it has copied, so a command may have 4100
 * bytes before its CRLF.
 */
export const COMMAND_BUFFER_SIZE = 4096 + 7;

/** The longest command line, in bytes after Telnet processing and without its line end. */
export const MAX_COMMAND_BYTES = COMMAND_BUFFER_SIZE - 3;

/**
 * pr_cmd_read gives up on a client after more than 3 over-long reads in a row
 * and closes the connection; each read is a buffer of COMMAND_BUFFER_SIZE - 1
 * bytes, so a line that runs past 3 buffers (plus the next) ends the session.
 */
const MAX_DISCARD_BYTES = 3 * (COMMAND_BUFFER_SIZE - 1);

/** #telnet's answers besides a byte: the byte adds nothing to the line, or IAC and then itself. */
const NOTHING = -1;
const IAC_THEN_BYTE = -2;

export type LineEvent =
  /** A complete line, line end removed, decoded as UTF-8 (RFC 2640). */
  | { readonly kind: "line"; readonly text: string }
  /** Bytes to send back: proftpd refuses every Telnet option (WILL/WONT -> DONT, DO/DONT -> WONT). */
  | { readonly kind: "telnet"; readonly reply: Uint8Array }
  /** A line longer than MAX_COMMAND_BYTES was dropped without a reply ("client sent too-long command, ignoring"). */
  | { readonly kind: "too-long" }
  /** The client kept sending one line past the limit; proftpd disconnects it. */
  | { readonly kind: "overflow" };

/**
 * Splits the control connection's bytes into lines and strips Telnet
 * commands, keeping its state across reads as proftpd's reader does.
 *
 * A line ends at LF, with or without a CR before it. (proftpd 1.3.8 ends a
 * line only at CRLF and keeps a bare LF inside the line; accepting LF alone
 * lets line-mode tools such as `nc` talk to the daemon.)
 */
export class ControlLineReader {
  #telnetMode = 0;
  /** An IAC IP was read and its IAC DM has not come yet. */
  #interrupted = false;
  #line: number[] = [];
  /** Bytes dropped from the current over-long line; -1 while the line fits. */
  #discarded = -1;

  /** The events for the next bytes read; nothing more once an overflow was reported. */
  push(chunk: Uint8Array): LineEvent[] {
    const events: LineEvent[] = [];
    for (const byte of chunk) {
      const kept = this.#telnet(byte, events);
      if (kept === NOTHING) continue;
      if (kept === IAC_THEN_BYTE) {
        if (this.#discarded === MAX_DISCARD_BYTES) return events;
        this.#take(IAC, events);
      }
      if (this.#discarded === MAX_DISCARD_BYTES) return events;
      this.#take(kept === IAC_THEN_BYTE ? byte : kept, events);
    }
    return events;
  }

  /**
   * The byte `byte` contributes to the line after Telnet processing (netio.c's
   * state machine): NOTHING, a byte, or IAC_THEN_BYTE (both). A number, not a
   * list, so that reading a command allocates nothing per byte.
   */
  #telnet(byte: number, events: LineEvent[]): number {
    switch (this.#telnetMode) {
      case IAC:
        this.#telnetMode = 0;
        if (byte === WILL || byte === WONT || byte === DO || byte === DONT) {
          this.#telnetMode = byte;
          return NOTHING;
        }
        // IAC IP and IAC DM are dropped; IAC IAC is an escaped 255 byte; IAC
        // followed by anything else keeps both bytes.
        if (byte === IP) {
          this.#interrupted = true;
          return NOTHING;
        }
        if (byte === DM) {
          this.#interrupted = false;
          return NOTHING;
        }
        if (byte === IAC) return IAC;
        if (this.#interrupted) {
          // RFC 959's abort is IAC IP, then IAC DM sent as TCP urgent data (BSD
          // ftp, lftp). proftpd reads urgent data inline (SO_OOBINLINE); Node
          // cannot, so the kernel keeps the DM byte out of the stream and its
          // IAC is left before the next command: that IAC goes too.
          this.#interrupted = false;
          return byte;
        }
        return IAC_THEN_BYTE;
      case WILL:
      case WONT:
        this.#telnetMode = 0;
        events.push({ kind: "telnet", reply: Uint8Array.of(IAC, DONT, byte) });
        return NOTHING;
      case DO:
      case DONT:
        this.#telnetMode = 0;
        events.push({ kind: "telnet", reply: Uint8Array.of(IAC, WONT, byte) });
        return NOTHING;
      default:
        if (byte === IAC) {
          this.#telnetMode = IAC;
          return NOTHING;
        }
        return byte;
    }
  }

  /**
   * An ABOR whose line end never came, taken as a whole command and cleared.
   * Clients that follow RFC 959 4.1.3 literally (Python's ftplib) send
   * `ABOR\r\n` as TCP urgent data: the kernel keeps the final urgent byte out
   * of the normal stream, so only `ABOR\r` arrives. proftpd's
   * pr_netio_telnet_gets2 looks for the same prefix during a transfer
   * (peek_is_abor_cmd); the session asks while a command is in progress.
   */
  takeUnterminatedAbort(): boolean {
    const line = this.#line;
    if (line.length !== 5 || line[4] !== CR) return false;
    if (Buffer.from(line.slice(0, 4)).toString("latin1").toUpperCase() !== "ABOR") return false;
    this.#line = [];
    return true;
  }

  #take(byte: number, events: LineEvent[]): void {
    if (byte === LF) {
      const end = this.#line.at(-1) === CR ? this.#line.length - 1 : this.#line.length;
      if (this.#discarded >= 0 || end > MAX_COMMAND_BYTES) {
        events.push({ kind: "too-long" });
      } else {
        events.push({ kind: "line", text: Buffer.from(this.#line.slice(0, end)).toString("utf8") });
      }
      this.#line = [];
      this.#discarded = -1;
      return;
    }
    if (this.#discarded >= 0) {
      this.#discarded++;
      if (this.#discarded === MAX_DISCARD_BYTES) events.push({ kind: "overflow" });
      return;
    }
    this.#line.push(byte);
    // One byte of room is kept for a CR; a line that needs more is dropped
    // now rather than held in memory.
    if (this.#line.length > MAX_COMMAND_BYTES + 1) {
      this.#discarded = this.#line.length;
      this.#line = [];
    }
  }
}

/** One FTP command as handlers see it (proftpd's cmd_rec argv/arg). */
export interface CommandLine {
  /** `argv[0]`, upper-cased as pr_cmd_dispatch_phase does. */
  readonly name: string;
  /** Everything after the command word and the one character that ended it, as sent. */
  readonly arg: string;
  /** The words, quotes removed; `argv[0]` as sent (not upper-cased). */
  readonly argv: readonly string[];
}

/** proftpd's PR_ISSPACE: isspace(3) in the C locale. */
function isSpace(ch: string | undefined): boolean {
  return ch === " " || ch === "\t" || ch === "\n" || ch === "\v" || ch === "\f" || ch === "\r";
}

/**
 * `pr_str_get_word` (src/str.c): skips leading white space unless told to
 * keep it, reads a `"quoted string"` (backslash escapes the next character)
 * or a run of non-space characters, and consumes the character that ended it.
 */
function nextWord(
  text: string,
  from: number,
  preserveWhitespace: boolean,
  ignoreQuotes = false,
): { word: string; next: number } | undefined {
  let at = from;
  if (!preserveWhitespace) while (at < text.length && isSpace(text[at])) at++;
  if (at >= text.length) return undefined;
  const quoted = !ignoreQuotes && text[at] === '"';
  if (quoted) at++;
  let word = "";
  while (at < text.length && (quoted ? text[at] !== '"' : !isSpace(text[at]))) {
    if (quoted && text[at] === "\\" && at + 1 < text.length) at++;
    word += text[at];
    at++;
  }
  if (at < text.length) at++;
  return { word, next: at };
}

/**
 * Turns a line from ControlLineReader into a command, as `pr_cmd_read` and
 * `make_ftp_cmd` do. Returns undefined where proftpd makes no command, which
 * it answers with `500 Invalid command: try being more creative`: an empty
 * line, or one starting with white space (RFC 959 has none there).
 */
export function parseCommandLine(line: string): CommandLine | undefined {
  // pr_cmd_read strips up to two trailing CR/LF characters and one leading CR.
  let text = line;
  for (let i = 0; i < 2 && (text.endsWith("\r") || text.endsWith("\n")); i++) text = text.slice(0, -1);
  if (text.startsWith("\r")) text = text.slice(1);
  if (text.length === 0 || isSpace(text[0])) return undefined;

  // SITE arguments keep embedded white space, so file names with several
  // spaces survive (PR_STR_FL_PRESERVE_WHITESPACE, chosen by a prefix test).
  const preserveWhitespace = text.slice(0, 4).toUpperCase() === "SITE";
  // The command word is never a quoted string (proftpd 1.3.8b, PR_STR_FL_IGNORE_QUOTES, Issue #1683).
  const first = nextWord(text, 0, false, true);
  if (first === undefined) return undefined;
  // RFC 2640 §3.1: a CR NUL pair in the argument stands for a bare CR.
  const arg = text.slice(first.next).replaceAll("\r\0", "\r");
  const argv = [first.word];
  for (
    let word = nextWord(arg, 0, preserveWhitespace);
    word !== undefined;
    word = nextWord(arg, word.next, preserveWhitespace)
  ) {
    argv.push(word.word);
  }
  return { name: first.word.toUpperCase(), arg, argv };
}
