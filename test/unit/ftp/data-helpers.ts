/**
 * Helpers for the data-connection and transfer tests: a clock moved by hand,
 * and the client's side of a data connection on loopback.
 */
import { on, once } from "node:events";
import net from "node:net";
import type { Clock } from "../../../host/system/clock.js";
import type { DataChannelSettings } from "../../../host/data/data-channel.js";

/** A Clock whose time moves only when a test says so; due timers run in order. */
export class FakeClock implements Clock {
  #now = 0;
  #timers: { at: number; run: () => void; live: boolean }[] = [];

  now(): number {
    return this.#now;
  }

  schedule(ms: number, run: () => void): () => void {
    const timer = { at: this.#now + ms, run, live: true };
    this.#timers.push(timer);
    return () => {
      timer.live = false;
    };
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }

  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.live && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.live = false;
      this.#now = due.at;
      due.run();
    }
    this.#now = until;
    this.#timers = this.#timers.filter((t) => t.live);
  }
}

export function settings(overrides: Partial<DataChannelSettings> = {}): DataChannelSettings {
  return {
    passivePorts: undefined,
    masqueradeAddress: undefined,
    allowForeignAddress: false,
    connectTimeoutMs: 5_000,
    ...overrides,
  };
}

/** Connects to 127.0.0.1:`port` from `localAddress` (another loopback address plays a foreign host). */
export async function connect(port: number, localAddress = "127.0.0.1"): Promise<net.Socket> {
  const socket = net.connect({ host: "127.0.0.1", port, localAddress });
  await once(socket, "connect");
  return socket;
}

/** Everything a socket sends until it ends. */
export async function readAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Resolves once the socket has closed (from either end). */
export function closed(socket: net.Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return once(socket, "close").then(() => undefined);
}

/** A listening test server on 127.0.0.1 and the sockets it accepts, in order. */
export async function server(): Promise<{
  server: net.Server;
  port: number;
  accepted: AsyncIterableIterator<[net.Socket]>;
}> {
  const srv = net.createServer();
  const accepted = on(srv, "connection") as AsyncIterableIterator<[net.Socket]>;
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  return { server: srv, port: (srv.address() as net.AddressInfo).port, accepted };
}

/** The first of `size` consecutive ports on 127.0.0.1 that are free right now (for PassivePorts ranges). */
export async function freeRange(size: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const min = 20_000 + Math.floor(Math.random() * 30_000);
    const probes: net.Server[] = [];
    let ok = true;
    for (let port = min; port < min + size && ok; port++) {
      const probe = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          probe.once("error", reject);
          probe.listen(port, "127.0.0.1", () => resolve());
        });
        probes.push(probe);
      } catch {
        ok = false;
      }
    }
    await Promise.all(probes.map((p) => new Promise((resolve) => p.close(resolve))));
    if (ok) return min;
  }
  throw new Error("no free port range");
}
