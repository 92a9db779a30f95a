/**
 * Guest instance states as the primary's `init` request carries them to a
 * starting worker (wire-state.ts): what JSON cannot hold crosses exactly, and
 * what our own primary could not have sent is refused.
 */
import { describe, expect, it } from "vitest";
import { asWireStates, fromWireState, toWireState } from "../../../host/cluster/wire-state.js";
import type { UnitInstanceState } from "../../../host/modules/instance-states.js";

const STATE: UnitInstanceState = {
  name: "mod_x.c",
  hash: "ab".repeat(32),
  snapshot: {
    pages: 2,
    chunks: [
      { offset: 0, bytes: Uint8Array.from([0, 1, 2, 255]) },
      { offset: 65_536, bytes: new Uint8Array(0) },
    ],
    globals: [7, -0, Number.NaN, Number.POSITIVE_INFINITY, -(2n ** 63n), 2n ** 63n - 1n, 0.5],
  },
};

describe("instance states on the worker channel", () => {
  it("cross JSON exactly: bytes, -0, NaN, the infinities and i64 values at both ends of the range", () => {
    const crossed = asWireStates(JSON.parse(JSON.stringify([toWireState(STATE)]))).map(fromWireState);
    expect(crossed).toHaveLength(1);
    const [state] = crossed as [UnitInstanceState];
    expect(state.name).toBe(STATE.name);
    expect(state.hash).toBe(STATE.hash);
    expect(state.snapshot.pages).toBe(2);
    expect(state.snapshot.chunks.map(({ offset, bytes }) => [offset, [...bytes]])).toEqual([
      [0, [0, 1, 2, 255]],
      [65_536, []],
    ]);
    expect(state.snapshot.globals).toHaveLength(STATE.snapshot.globals.length);
    state.snapshot.globals.forEach((value, i) => expect(Object.is(value, STATE.snapshot.globals[i])).toBe(true));
  });

  it.each([
    ["not a list", {}],
    ["a state without its hash", [{ ...toWireState(STATE), hash: undefined }]],
    ["bytes that are not base64", [{ ...toWireState(STATE), chunks: [{ offset: 0, base64: "not base64!" }] }]],
    ["a negative offset", [{ ...toWireState(STATE), chunks: [{ offset: -4, base64: "" }] }]],
    ["an i64 that is not decimal", [{ ...toWireState(STATE), globals: [{ i64: "0x10" }] }]],
    ["a global that is text", [{ ...toWireState(STATE), globals: ["7"] }]],
  ])("are refused when malformed: %s", (_what, value) => {
    expect(() => asWireStates(JSON.parse(JSON.stringify(value)))).toThrow(
      "malformed instance states on the session worker channel",
    );
  });
});
