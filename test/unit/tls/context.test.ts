import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  SESSION_CACHE_SIZE,
  SESSION_TICKET_LIFETIME_SECONDS,
  createSessionTls,
  secureContextOptions,
} from "../../../host/tls/context.js";
import { certificateFile, chainFile, keyFile } from "../../../host/tls/credentials.js";
import { REPO_ROOT } from "../../helpers/paths.js";

const certText = readFileSync(path.join(REPO_ROOT, "test", "fixtures", "tls", "cert.pem"), "latin1");
const keyText = readFileSync(path.join(REPO_ROOT, "test", "fixtures", "tls", "key.pem"), "latin1");
const certificate = certificateFile("/c.pem", { text: certText });
const key = keyFile("/k.pem", { text: keyText });
const RANGE = { minVersion: "TLSv1.2", maxVersion: "TLSv1.3" } as const;

type Done = (error: Error | null, data: Buffer | null) => void;

/** What the session cache answers `resumeSession` for `id`. */
function lookup(cache: ReturnType<typeof createSessionTls>["server"], id: string): Buffer | null {
  let found: Buffer | null | undefined;
  cache.emit("resumeSession", Buffer.from(id), ((_error, data) => (found = data)) satisfies Done);
  if (found === undefined) throw new Error("resumeSession did not answer");
  return found;
}

describe("a session's SecureContext", () => {
  it("carries the certificate, then the chain, the key and the TLSProtocol range", () => {
    expect(secureContextOptions({ certificate, key, chain: undefined }, RANGE)).toEqual({
      cert: certText,
      key: keyText,
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.3",
      honorCipherOrder: true,
      sessionTimeout: 604_800,
    });
    const chain = chainFile("/chain.pem", { text: certText });
    expect(
      secureContextOptions({ certificate, key, chain }, { minVersion: "TLSv1.3", maxVersion: "TLSv1.3" }).cert,
    ).toBe(`${certText}${certText}`);
    expect(SESSION_TICKET_LIFETIME_SECONDS).toBe(7 * 24 * 3600);
  });

  it("is made afresh for each session, with its own session-ticket keys and session cache", () => {
    const one = createSessionTls({ certificate, key, chain: undefined }, RANGE);
    const two = createSessionTls({ certificate, key, chain: undefined }, RANGE);
    expect(one.isServer).toBe(true);
    expect(one.secureContext).not.toBe(two.secureContext);
    const keys = (options: typeof one): Buffer =>
      (options.secureContext.context as { getTicketKeys(): Buffer }).getTicketKeys();
    expect(keys(one).equals(keys(two))).toBe(false);
    one.server.emit("newSession", Buffer.from("id-1"), Buffer.from("session 1"), () => {});
    expect(lookup(one.server, "id-1")).toEqual(Buffer.from("session 1"));
    expect(lookup(two.server, "id-1")).toBeNull();
  });
});

describe("a session's session-ID cache", () => {
  it("keeps the latest sessions, and says when it has done so", () => {
    const { server: cache } = createSessionTls({ certificate, key, chain: undefined }, RANGE);
    let stored = 0;
    for (let i = 0; i <= SESSION_CACHE_SIZE; i++)
      cache.emit("newSession", Buffer.from(`id-${i}`), Buffer.from(`session ${i}`), () => stored++);
    expect(stored).toBe(SESSION_CACHE_SIZE + 1);
    expect(lookup(cache, "id-0")).toBeNull();
    expect(lookup(cache, "id-1")).toEqual(Buffer.from("session 1"));
    expect(lookup(cache, `id-${SESSION_CACHE_SIZE}`)).toEqual(Buffer.from(`session ${SESSION_CACHE_SIZE}`));
    expect(cache.listening).toBe(false);
  });
});
