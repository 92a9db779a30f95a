/**
 * ServerIdent through the real dsod: the greeting says dsod's name by
 * default, the configured text with its variables, or only the address.
 */
import { describe, expect, it } from "vitest";
import { daemonFixture } from "./helpers/fixture.js";
import { FtpControl } from "./helpers/ftp-client.js";

const fixture = daemonFixture();

async function greetingOf(lines: readonly string[]): Promise<string[]> {
  const { daemon } = await fixture.start(lines);
  const { client, greeting } = await FtpControl.connect(daemon.port);
  fixture.adoptClient(client);
  return greeting;
}

describe("ServerIdent", () => {
  it("greets with dsod's own name in proftpd's shape by default", async () => {
    expect(await greetingOf(['ServerName "ident test"'])).toEqual(["220 dsod Server (ident test) [127.0.0.1]"]);
  });

  it("sends the configured text with %v and %L replaced", async () => {
    expect(await greetingOf(['ServerName "ident test"', 'ServerIdent on "Welcome to %v at %L"'])).toEqual([
      "220 Welcome to ident test at 127.0.0.1",
    ]);
  });

  it("says only the address with ServerIdent off", async () => {
    expect(await greetingOf(["ServerIdent off"])).toEqual(["220 127.0.0.1 FTP server ready"]);
  });
});
