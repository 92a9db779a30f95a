/**
 * Fuzzing inside `npm test` is bounded and repeatable: a fixed seed and a
 * small count. `npm run fuzz` sets FUZZ_RUNS (and FUZZ_SEED) for a long run.
 * Each target prints how many inputs it tried and how many crashed (an
 * exception other than the DsoError its contract allows).
 */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 400);
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261126);

export function report(target: string, inputs: number, crashes: number): void {
  console.log(`fuzz ${target}: ${inputs} inputs tried, ${crashes} crashes`);
}

/** Long runs (`npm run fuzz`) need more than vitest's 5 s per test: about a millisecond an input at worst. */
export const FUZZ_TIMEOUT_MS = Math.max(10_000, FUZZ_RUNS * 2);
