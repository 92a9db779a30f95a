/**
 * proftpd's log line shapes, as pure formatters: the daemon's own log
 * (`2026-11-26 18:57:02,393 host proftpd[8245]: msg`, src/log.c) and the trace
 * log (`2026-11-26 18:57:02,393 [8245] <dso:5>: msg`, src/trace.c). Local time,
 * milliseconds after a comma.
 */
function pad(value: number, width = 2): string {
  return String(value).padStart(width, "0");
}

export function formatTimestamp(date: Date): string {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())},${pad(date.getMilliseconds(), 3)}`
  );
}

export function formatLogLine(date: Date, host: string, pid: number, message: string): string {
  return `${formatTimestamp(date)} ${host} dsod[${pid}]: ${message}`;
}

export function formatTraceLine(date: Date, pid: number, channel: string, level: number, message: string): string {
  return `${formatTimestamp(date)} [${pid}] <${channel}:${level}>: ${message}`;
}

/**
 * Parses one `Trace` argument, `channel:level` (proftpd's pr_trace_set_levels
 * also accepts `channel:min-max`; the upper bound is what is logged up to).
 * Returns undefined for anything else.
 */
export function parseTraceSpec(spec: string): { channel: string; level: number } | undefined {
  const match = /^([A-Za-z0-9_.-]+):(?:(\d+)-)?(\d+)$/.exec(spec);
  if (match === null) return undefined;
  return { channel: match[1] as string, level: Number(match[3]) };
}
