/**
 * The client side of a bench section that drives its FTP clients from a
 * worker thread (so the client's own event loop does not share the section's
 * thread with what it measures): one request at a time, each answered in
 * order; a `{ kind: "error" }` answer rejects with its message.
 */
import { Worker } from "node:worker_threads";

export type ClientError = { readonly kind: "error"; readonly message: string };

export class WorkerClient<Request, Response extends { readonly kind: string }> {
  readonly #worker: Worker;
  readonly #label: string;
  #waiting: ((response: Response | ClientError) => void) | undefined;

  /** Starts `script` as a worker with `workerData: { role }`; `label` names the client in errors. */
  constructor(script: URL, role: string, label: string) {
    this.#label = label;
    this.#worker = new Worker(script, { workerData: { role } });
    this.#worker.on("message", (response: Response | ClientError) => this.#waiting?.(response));
    this.#worker.on("error", (error) => {
      throw error;
    });
  }

  /** One request at a time, awaited by the caller. */
  ask(request: Request): Promise<Response> {
    if (this.#waiting !== undefined) throw new Error(`bench: ${this.#label} asked twice at once`);
    return new Promise((resolve, reject) => {
      this.#waiting = (response) => {
        this.#waiting = undefined;
        if (isError(response)) reject(new Error(`bench: ${this.#label}: ${response.message}`));
        else resolve(response);
      };
      this.#worker.postMessage(request);
    });
  }

  async close(): Promise<void> {
    await this.#worker.terminate();
  }
}

function isError(response: { readonly kind: string }): response is ClientError {
  return response.kind === "error";
}
