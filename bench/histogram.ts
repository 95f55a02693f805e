/**
 * A latency histogram with logarithmic buckets (each 1% wider than the previous, from 1 µs),
 * so percentiles are within 1% whatever the count, and histograms of several processes merge
 * by adding their buckets.
 */
const MIN_MS = 0.001;
const GROWTH = Math.log(1.01);

export interface HistogramData {
  /** [bucket index, count] pairs. */
  buckets: Array<[number, number]>;
  count: number;
  sumMs: number;
  minMs: number;
  maxMs: number;
}

export class Histogram {
  private readonly buckets = new Map<number, number>();
  count = 0;
  sumMs = 0;
  minMs = Infinity;
  maxMs = 0;

  record(ms: number): void {
    const value = ms > MIN_MS ? ms : MIN_MS;
    const index = Math.floor(Math.log(value / MIN_MS) / GROWTH);
    this.buckets.set(index, (this.buckets.get(index) ?? 0) + 1);
    this.count++;
    this.sumMs += ms;
    if (ms < this.minMs) this.minMs = ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  toJSON(): HistogramData {
    return {
      buckets: [...this.buckets],
      count: this.count,
      sumMs: this.sumMs,
      minMs: this.minMs,
      maxMs: this.maxMs,
    };
  }

  merge(data: HistogramData): void {
    for (const [index, n] of data.buckets)
      this.buckets.set(index, (this.buckets.get(index) ?? 0) + n);
    this.count += data.count;
    this.sumMs += data.sumMs;
    if (data.count > 0) {
      this.minMs = Math.min(this.minMs, data.minMs);
      this.maxMs = Math.max(this.maxMs, data.maxMs);
    }
  }

  /** The value at quantile q (0..1): the middle of its bucket, clamped to the recorded range. */
  percentile(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (const index of [...this.buckets.keys()].sort((a, b) => a - b)) {
      seen += this.buckets.get(index)!;
      if (seen >= rank) {
        const mid = MIN_MS * Math.exp((index + 0.5) * GROWTH);
        return Math.min(this.maxMs, Math.max(this.minMs, mid));
      }
    }
    return this.maxMs;
  }

  summary(): {
    count: number;
    p50Ms: number | null;
    p99Ms: number | null;
    maxMs: number | null;
    meanMs: number | null;
  } {
    return {
      count: this.count,
      p50Ms: round(this.percentile(0.5), 2),
      p99Ms: round(this.percentile(0.99), 2),
      maxMs: this.count ? round(this.maxMs, 2) : null,
      meanMs: this.count ? round(this.sumMs / this.count, 2) : null,
    };
  }
}

export function round(value: number | null, digits: number): number | null {
  if (value === null || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
