/**
 * Summary statistics for benchmark samples. Medians and percentiles rather
 * than means: on a shared 2-core VM a single descheduled sample can be several
 * times slower than the rest, and a mean would report that instead of the code.
 */

export interface Summary {
  readonly median: number;
  readonly p10: number;
  readonly p90: number;
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

function sorted(samples: readonly number[]): number[] {
  if (samples.length === 0) throw new Error("no samples");
  return [...samples].sort((a, b) => a - b);
}

/** Percentile `p` (0–100) with linear interpolation between closest ranks. */
function percentileOfSorted(values: readonly number[], p: number): number {
  const rank = (p / 100) * (values.length - 1);
  const lower = Math.floor(rank);
  const upper = Math.ceil(rank);
  const a = values[lower] as number;
  const b = values[upper] as number;
  return a + (b - a) * (rank - lower);
}

export function percentile(samples: readonly number[], p: number): number {
  return percentileOfSorted(sorted(samples), p);
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function summarize(samples: readonly number[]): Summary {
  const values = sorted(samples);
  return {
    median: percentileOfSorted(values, 50),
    p10: percentileOfSorted(values, 10),
    p90: percentileOfSorted(values, 90),
    min: values[0] as number,
    max: values[values.length - 1] as number,
    count: values.length,
  };
}

/** Nanoseconds elapsed since `start` (a `process.hrtime.bigint()` reading), as a number. */
export function elapsedNs(start: bigint): number {
  return Number(process.hrtime.bigint() - start);
}

/** Three significant digits, without exponent notation for the magnitudes we print. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}

/** One line of the benchmark table (and of the JSON written next to it). */
export interface Row {
  readonly group: string;
  readonly name: string;
  /** The median of the samples. */
  readonly figure: number;
  /** The spread of the samples: p10 and p90, or min and max when there are fewer than 10. */
  readonly spread: readonly [number, number];
  readonly spreadKind: "p10-p90" | "min-max";
  readonly unit: string;
  /** Name of the row this one is compared with, and figure / anchor figure. */
  readonly anchor: string;
  readonly ratio: number;
  readonly samples: number;
  readonly note?: string;
}

/** Builds a row from raw samples; `anchor` undefined makes the row its own anchor. */
export function rowOf(
  fields: { group: string; name: string; unit: string; note?: string },
  samples: readonly number[],
  anchor?: { name: string; figure: number },
): Row {
  const summary = summarize(samples);
  // p10/p90 of fewer than 10 samples are interpolations between the extremes and read as false precision.
  const useMinMax = summary.count < 10;
  const row: Row = {
    group: fields.group,
    name: fields.name,
    figure: summary.median,
    spread: useMinMax ? [summary.min, summary.max] : [summary.p10, summary.p90],
    spreadKind: useMinMax ? "min-max" : "p10-p90",
    unit: fields.unit,
    anchor: anchor?.name ?? fields.name,
    ratio: anchor === undefined ? 1 : summary.median / anchor.figure,
    samples: summary.count,
  };
  return fields.note === undefined ? row : { ...row, note: fields.note };
}
