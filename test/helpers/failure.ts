/** What a call that must fail with a DsoError threw, as its code and message; anything else fails the test. */
import { DsoError } from "../../host/errors.js";
import type { ErrorCode } from "../../host/errors.js";

export function dsoFailure(action: () => unknown): { code: ErrorCode; message: string } {
  try {
    action();
  } catch (error) {
    if (!(error instanceof DsoError)) throw error;
    return { code: error.code, message: error.message };
  }
  throw new Error("expected a DsoError");
}
