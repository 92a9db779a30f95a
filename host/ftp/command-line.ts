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
const ABOR = "ABOR";

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

/** What ControlLineReader.read reports, event by event, without an object per event. */
export interface LineSink {
  /** A complete line, line end removed, decoded as UTF-8 (RFC 2640). */
  line(text: string): void;
  /** Bytes to send back: proftpd refuses every Telnet option (WILL/WONT -> DONT, DO/DONT -> WONT). */
  telnet(reply: Uint8Array): void;
  /** A line longer than MAX_COMMAND_BYTES was dropped without a reply ("client sent too-long command, ignoring"). */
  tooLong(): void;
  /** The client kept sending one line past the limit; proftpd disconnects it. */
  overflow(): void;
}

/** The line buffer's first size: most commands fit; it grows for longer ones, up to MAX_COMMAND_BYTES and a CR. */
const INITIAL_LINE_BYTES = 128;

/**
 * Splits the control connection's bytes into lines and strips Telnet
 * commands, keeping its state across reads as proftpd's reader does.
 *
 * A line ends at LF, with or without a CR before it. (proftpd 1.3.8 ends a
 * line only at CRLF and keeps a bare LF inside the line; accepting LF alone
 * lets line-mode tools such as `nc` talk to the daemon.)
 *
 * Reading a command allocates its text and nothing else: the line's bytes go
 * into one buffer kept for the session (proftpd's command buffer), and each
 * event goes straight to the reader's caller.
 */
export class ControlLineReader {
  #telnetMode = 0;
  /** An IAC IP was read and its IAC DM has not come yet. */
  #interrupted = false;
  #line = Buffer.alloc(INITIAL_LINE_BYTES);
  /** Bytes of #line in use. */
  #length = 0;
  /** Bytes dropped from the current over-long line; -1 while the line fits. */
  #discarded = -1;

  /** Reads the next bytes, telling `events` what they hold in order; nothing more once an overflow was reported. */
  read(chunk: Uint8Array, events: LineSink): void {
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i] as number;
      const kept = this.#telnet(byte, events);
      if (kept === NOTHING) continue;
      if (kept === IAC_THEN_BYTE) {
        if (this.#discarded === MAX_DISCARD_BYTES) return;
        this.#take(IAC, events);
      }
      if (this.#discarded === MAX_DISCARD_BYTES) return;
      this.#take(kept === IAC_THEN_BYTE ? byte : kept, events);
    }
  }

  /**
   * The byte `byte` contributes to the line after Telnet processing (netio.c's
   * state machine): NOTHING, a byte, or IAC_THEN_BYTE (both). A number, not a
   * list, so that reading a command allocates nothing per byte.
   */
  #telnet(byte: number, events: LineSink): number {
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
        events.telnet(Uint8Array.of(IAC, DONT, byte));
        return NOTHING;
      case DO:
      case DONT:
        this.#telnetMode = 0;
        events.telnet(Uint8Array.of(IAC, WONT, byte));
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
    if (this.#length !== 5 || line[4] !== CR) return false;
    // Case-insensitive in ASCII: no other byte upper-cases to one of these letters.
    for (let i = 0; i < 4; i++) if (((line[i] as number) & ~0x20) !== ABOR.charCodeAt(i)) return false;
    this.#length = 0;
    return true;
  }

  #take(byte: number, events: LineSink): void {
    if (byte === LF) {
      const length = this.#length;
      const end = length > 0 && this.#line[length - 1] === CR ? length - 1 : length;
      if (this.#discarded >= 0 || end > MAX_COMMAND_BYTES) {
        events.tooLong();
      } else {
        events.line(this.#line.toString("utf8", 0, end));
      }
      this.#length = 0;
      this.#discarded = -1;
      return;
    }
    if (this.#discarded >= 0) {
      this.#discarded++;
      if (this.#discarded === MAX_DISCARD_BYTES) events.overflow();
      return;
    }
    if (this.#length === this.#line.length) this.#grow();
    this.#line[this.#length++] = byte;
    // One byte of room is kept for a CR; a line that needs more is dropped
    // now rather than held in memory.
    if (this.#length > MAX_COMMAND_BYTES + 1) {
      this.#discarded = this.#length;
      this.#length = 0;
    }
  }

  #grow(): void {
    const line = Buffer.alloc(Math.min(2 * this.#line.length, MAX_COMMAND_BYTES + 1));
    this.#line.copy(line);
    this.#line = line;
  }
}

/** LineQueue's first size, and the size it goes back to once a burst of pipelined lines has drained. */
const QUEUE_SLOTS = 16;

/**
 * The lines read ahead of the command in progress, first in, first out. Its
 * slots are reused in a ring, so that queueing a line allocates nothing (an
 * array's push and shift reallocate its storage as it fills and empties).
 */
export class LineQueue {
  #slots: string[] = new Array<string>(QUEUE_SLOTS).fill("");
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(line: string): void {
    if (this.#length === this.#slots.length) this.#resize(2 * this.#slots.length);
    this.#slots[(this.#head + this.#length) % this.#slots.length] = line;
    this.#length++;
  }

  /** The first line, taken off the queue; undefined when it is empty. */
  shift(): string | undefined {
    if (this.#length === 0) return undefined;
    const line = this.#slots[this.#head];
    this.#slots[this.#head] = "";
    this.#head = (this.#head + 1) % this.#slots.length;
    this.#length--;
    if (this.#length === 0 && this.#slots.length > QUEUE_SLOTS) this.#resize(QUEUE_SLOTS);
    return line;
  }

  #resize(size: number): void {
    const slots = new Array<string>(size).fill("");
    for (let i = 0; i < this.#length; i++) slots[i] = this.#slots[(this.#head + i) % this.#slots.length] as string;
    this.#slots = slots;
    this.#head = 0;
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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** proftpd's PR_ISSPACE: isspace(3) in the C locale (space, and \t \n \v \f \r). */
function isSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d);
}

/**
 * Where the word nextWord last read ended: its second result, kept out of an
 * object so that parsing a command allocates only its words.
 */
let wordEnd = 0;

/**
 * `pr_str_get_word` (src/str.c): skips leading white space unless told to
 * keep it, reads a `"quoted string"` (backslash escapes the next character)
 * or a run of non-space characters, and consumes the character that ended it
 * (wordEnd is then after it).
 */
function nextWord(text: string, from: number, preserveWhitespace: boolean, ignoreQuotes = false): string | undefined {
  const length = text.length;
  let at = from;
  if (!preserveWhitespace) while (at < length && isSpace(text.charCodeAt(at))) at++;
  if (at >= length) return undefined;
  const quoted = !ignoreQuotes && text.charCodeAt(at) === QUOTE;
  if (quoted) at++;
  // The word is the text from `start` to `at`, after the runs already taken into `word` (an escape ends a run).
  let start = at;
  let word = "";
  while (at < length) {
    const code = text.charCodeAt(at);
    if (quoted ? code === QUOTE : isSpace(code)) break;
    if (quoted && code === BACKSLASH && at + 1 < length) {
      word += text.slice(start, at);
      start = ++at;
    }
    at++;
  }
  word += text.slice(start, at);
  wordEnd = at < length ? at + 1 : at;
  return word;
}

/** `text`'s first four characters upper-cased are SITE (tested without building strings when they are ASCII). */
function startsWithSite(text: string): boolean {
  if (text.length < 4) return false;
  for (let i = 0; i < 4; i++) {
    // Outside ASCII, upper-casing may change a character's length or make an ASCII letter ("ſ" is "S").
    if (text.charCodeAt(i) >= 0x80) return text.slice(0, 4).toUpperCase() === "SITE";
  }
  // `| 0x20` makes an ASCII letter lower case, and no other ASCII character one of these.
  return (
    (text.charCodeAt(0) | 0x20) === 0x73 &&
    (text.charCodeAt(1) | 0x20) === 0x69 &&
    (text.charCodeAt(2) | 0x20) === 0x74 &&
    (text.charCodeAt(3) | 0x20) === 0x65
  );
}

/** `word.toUpperCase()`, without a copy when the word has nothing to upper-case (the usual command name). */
function upperCase(word: string): string {
  for (let i = 0; i < word.length; i++) {
    const code = word.charCodeAt(i);
    if ((code >= 0x61 && code <= 0x7a) || code >= 0x80) return word.toUpperCase();
  }
  return word;
}

/**
 * Turns a line from ControlLineReader into a command, as `pr_cmd_read` and
 * `make_ftp_cmd` do. Returns undefined where proftpd makes no command, which
 * it answers with `500 Invalid command: try being more creative`: an empty
 * line, or one starting with white space (RFC 959 has none there).
 */
export function parseCommandLine(line: string): CommandLine | undefined {
  // pr_cmd_read strips up to two trailing CR/LF characters and one leading CR.
  let end = line.length;
  for (let i = 0; i < 2 && end > 0; i++) {
    const code = line.charCodeAt(end - 1);
    if (code !== CR && code !== LF) break;
    end--;
  }
  const start = end > 0 && line.charCodeAt(0) === CR ? 1 : 0;
  const text = start === 0 && end === line.length ? line : line.slice(start, end);
  if (text.length === 0 || isSpace(text.charCodeAt(0))) return undefined;

  // SITE arguments keep embedded white space, so file names with several
  // spaces survive (PR_STR_FL_PRESERVE_WHITESPACE, chosen by a prefix test).
  const preserveWhitespace = startsWithSite(text);
  // The command word is never a quoted string (proftpd 1.3.8b, PR_STR_FL_IGNORE_QUOTES, Issue #1683).
  const first = nextWord(text, 0, false, true);
  if (first === undefined) return undefined;
  // RFC 2640 §3.1: a CR NUL pair in the argument stands for a bare CR.
  const rest = text.slice(wordEnd);
  const arg = rest.includes("\r\0") ? rest.replaceAll("\r\0", "\r") : rest;
  const argv = [first];
  for (let word = nextWord(arg, 0, preserveWhitespace); word !== undefined;) {
    argv.push(word);
    word = nextWord(arg, wordEnd, preserveWhitespace);
  }
  return { name: upperCase(first), arg, argv };
}
