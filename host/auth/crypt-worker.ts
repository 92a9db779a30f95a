/**
 * A password-check worker thread (host/auth/password-check.ts's fallback when
 * the crypt addon is absent): runs the JavaScript crypt(3) off the event loop.
 * Each request is `{ id, password, setting }`, each answer `{ id, hash }`.
 */
import { parentPort } from "node:worker_threads";
import { crypt } from "./crypt.js";

export interface CryptRequest {
  readonly id: number;
  readonly password: string;
  readonly setting: string;
}

export interface CryptAnswer {
  readonly id: number;
  readonly hash: string | null;
}

if (parentPort !== null) {
  const port = parentPort;
  port.on("message", ({ id, password, setting }: CryptRequest) => {
    const answer: CryptAnswer = { id, hash: crypt(password, setting) };
    port.postMessage(answer);
  });
  // Loaded: the pool may drop privileges now that this file has been read.
  port.postMessage("ready");
}
