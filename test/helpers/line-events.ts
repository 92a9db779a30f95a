/**
 * ControlLineReader's events for a chunk, as a list: what the tests compare,
 * where the session passes a sink instead (no object per event on the hot path).
 */
import type { ControlLineReader } from "../../host/ftp/command-line.js";

export type LineEvent =
  | { readonly kind: "line"; readonly text: string }
  | { readonly kind: "telnet"; readonly reply: Uint8Array }
  | { readonly kind: "too-long" }
  | { readonly kind: "overflow" };

export function lineEvents(reader: ControlLineReader, chunk: Uint8Array): LineEvent[] {
  const events: LineEvent[] = [];
  reader.read(chunk, {
    line: (text) => events.push({ kind: "line", text }),
    telnet: (reply) => events.push({ kind: "telnet", reply }),
    tooLong: () => events.push({ kind: "too-long" }),
    overflow: () => events.push({ kind: "overflow" }),
  });
  return events;
}
