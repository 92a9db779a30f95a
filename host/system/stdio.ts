/**
 * A CLI whose output is piped into `head` must stop quietly when the reader
 * goes away (EPIPE), as C programs do on SIGPIPE, instead of dying with a
 * stack trace.
 */
export function exitQuietlyOnClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
      throw error;
    });
  }
}
