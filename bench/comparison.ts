/**
 * One row of `make bench`'s side-by-side table: a measure taken of a peer (nchan, the MCP SDK's
 * reference server) and of the project in the same run, their ratio and the target ratio.
 */
export interface Comparison {
  /** What was measured, e.g. 'CPU per delivery, 1,000 subscribers × 50/s'. */
  measure: string;
  /** The peer's name and version, e.g. 'nchan 1.3.6 (Redis, 1 worker)'. */
  peer: string;
  /** Null when the peer could not run here (the reason goes in `detail`). */
  peerValue: number | null;
  projectValue: number | null;
  unit: string;
  /** Which way is better: the ratio is project / peer either way. */
  better: 'lower' | 'higher';
  /** The target on project / peer: at most this when lower is better, at least when higher. */
  targetRatio: number;
  /** Anything a reader needs to read the figures (setup, breakdown, why n/a). */
  detail?: string;
}

/** project / peer, or null when either is missing. */
export function ratioOf(row: Comparison): number | null {
  if (row.peerValue === null || row.projectValue === null || row.peerValue === 0) return null;
  return row.projectValue / row.peerValue;
}

/** Whether the row meets its target: null when it cannot be told. */
export function meetsTarget(row: Comparison): boolean | null {
  const ratio = ratioOf(row);
  if (ratio === null) return null;
  return row.better === 'lower' ? ratio <= row.targetRatio : ratio >= row.targetRatio;
}

/** The median of a run's repeated figures (the figures are medians of interleaved runs). */
export function median(values: number[]): number | null {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** What each scenario of `make bench` hands to bench/run.ts, which prints and saves them all. */
export interface ScenarioResult {
  /** Key in bench/results/latest.json, e.g. 'broadcast', 'mcpCalls', 'resumeStorm'. */
  name: string;
  /** Rows of the side-by-side table. */
  rows: Comparison[];
  /** Lines printed under the table (figures without a peer, e.g. the resume storm's). */
  lines: string[];
  /** Everything measured, saved as is. */
  details: Record<string, unknown>;
  /** What went wrong (lost, duplicated or reordered events, failed calls): makes the exit code 2. */
  broken: string[];
}
