/**
 * Daemons and FTP clients for one test file: started on demand, all stopped
 * after each test, so a failing test never leaks a dsod.
 */
import { afterEach } from "vitest";
import { FtpControl } from "./ftp-client.js";
import { RunningDsod, baseConfig, tempDir, writeConfig } from "./dsod.js";

export interface DaemonFixture {
  /** Starts dsod on the base config plus `lines`, in a fresh temp dir. */
  start(lines: readonly string[]): Promise<{ daemon: RunningDsod; dir: string }>;
  /** Connects to `daemon` and logs in as demo unless told not to. */
  connect(daemon: RunningDsod, login?: boolean): Promise<FtpControl>;
  /** Stops a daemon that a test started another way, with the others. */
  adopt(daemon: RunningDsod): void;
  /** Closes a client that a test connected another way, with the others. */
  adoptClient(client: FtpControl): void;
}

export function daemonFixture(): DaemonFixture {
  const running: RunningDsod[] = [];
  const clients: FtpControl[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const daemon of running.splice(0)) await daemon.stop();
  });
  return {
    async start(lines) {
      const dir = tempDir();
      const config = writeConfig(dir, [baseConfig(dir), ...lines].join("\n"));
      const daemon = await RunningDsod.start(config, `${dir}/dsod.sock`);
      running.push(daemon);
      return { daemon, dir };
    },
    async connect(daemon, login = true) {
      const { client } = await FtpControl.connect(daemon.port);
      clients.push(client);
      if (login) await client.login();
      return client;
    },
    adopt(daemon) {
      running.push(daemon);
    },
    adoptClient(client) {
      clients.push(client);
    },
  };
}
