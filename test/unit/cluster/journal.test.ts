/**
 * The journal as a worker's `init` carries it (host/cluster/journal.ts): every
 * kind of entry the primary writes comes back as it was; anything else is a
 * bug on the channel, refused.
 */
import { describe, expect, it } from "vitest";
import { asDisableOp, asJournal, opText } from "../../../host/cluster/journal.js";

describe("asJournal", () => {
  it("reads back insmod, rmmod and disable entries, in order", () => {
    const journal = [
      { kind: "insmod", name: "mod_sql.c" },
      { kind: "insmod", name: "mod_sql_mysql.c" },
      { kind: "disable", name: "mod_sql.c" },
      { kind: "rmmod", name: "mod_test.c" },
    ];
    expect(asJournal(JSON.parse(JSON.stringify(journal)))).toEqual(journal);
    expect(asJournal(journal).map(opText)).toEqual([
      "insmod mod_sql.c",
      "insmod mod_sql_mysql.c",
      "disable mod_sql.c",
      "rmmod mod_test.c",
    ]);
  });

  it("refuses what the primary never writes", () => {
    expect(() => asJournal({})).toThrow("malformed journal on the session worker channel");
    expect(() => asJournal([{ kind: "reload", name: "mod_x.c" }])).toThrow(
      "malformed module change on the session worker channel",
    );
    expect(() => asJournal([{ kind: "disable" }])).toThrow("malformed module disable on the session worker channel");
    expect(() => asDisableOp({ kind: "rmmod", name: "mod_x.c" })).toThrow("malformed module disable");
  });
});
