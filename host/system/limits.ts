/**
 * The descriptor budget of the daemon. Every session, the controls socket and
 * the log files share one process's RLIMIT_NOFILE (proftpd forks a process
 * per session, so its master never runs short). MaxInstances' default is
 * derived from that limit so that sessions can never take the descriptors the
 * controls socket and the logs need: an administrator locked out of dsoctl by
 * a connection flood is what the limit answers.
 */
import { readFileSync } from "node:fs";

/** Descriptors kept for the daemon itself: Node's own (about 20), the listeners, ControlsMaxClients connections, log files, module files and getent pipes. */
export const RESERVED_DESCRIPTORS = 64;

/**
 * The most one session holds at once: its control connection, the directory
 * its filesystem jail keeps open, a passive listener, a data connection and
 * the file being transferred.
 */
export const DESCRIPTORS_PER_SESSION = 5;

export interface DescriptorLimit {
  /** The soft limit, the one open(2) and accept(2) fail at; Infinity for `unlimited`. */
  readonly soft: number;
  readonly hard: number;
}

function limitValue(text: string): number | undefined {
  if (text === "unlimited") return Infinity;
  return /^[0-9]+$/.test(text) ? Number(text) : undefined;
}

/** The `Max open files` line of /proc/<pid>/limits (what prlimit(1) prints); undefined when absent or unreadable. */
export function parseOpenFilesLimit(text: string): DescriptorLimit | undefined {
  for (const line of text.split("\n")) {
    const match = /^Max open files\s+(\S+)\s+(\S+)/.exec(line);
    if (match === null) continue;
    const soft = limitValue(match[1] as string);
    const hard = limitValue(match[2] as string);
    return soft === undefined || hard === undefined ? undefined : { soft, hard };
  }
  return undefined;
}

/** This process's descriptor limit, from /proc/self/limits; undefined where there is no /proc. */
export function readOpenFilesLimit(file = "/proc/self/limits"): DescriptorLimit | undefined {
  try {
    return parseOpenFilesLimit(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

/**
 * MaxInstances' default for a soft descriptor limit: as many sessions as fit
 * in what the daemon's reserve leaves, at least one; 0 (no limit) when the
 * limit itself is unlimited or unknown.
 */
export function defaultMaxInstances(limit: DescriptorLimit | undefined): number {
  if (limit === undefined || limit.soft === Infinity) return 0;
  return Math.max(1, Math.floor((limit.soft - RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_SESSION));
}
