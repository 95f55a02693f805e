import type { WindowCount, WindowCounters } from '../engine';

/** Fixed-window counters in this process; ended windows are dropped on the next sweep. */
export class MemoryWindowCounters implements WindowCounters {
  private readonly windows = new Map<string, WindowCount>();
  private nextSweepAt = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async add(key: string, windowMs: number, delta = 1): Promise<WindowCount> {
    assertWindow(windowMs);
    const now = this.now();
    this.sweep(now, windowMs);
    let window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      window = { hits: 0, resetAt: now + windowMs };
      this.windows.set(key, window);
    }
    window.hits += delta;
    return { ...window };
  }

  async reset(key: string): Promise<void> {
    this.windows.delete(key);
  }

  /** At most once per window length: memory stays bounded by the keys of one window. */
  private sweep(now: number, windowMs: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + windowMs;
    for (const [key, window] of this.windows) {
      if (window.resetAt <= now) this.windows.delete(key);
    }
  }
}

export function assertWindow(windowMs: number): void {
  if (!Number.isInteger(windowMs) || windowMs <= 0) {
    throw new RangeError(`windowMs must be a positive integer, got ${windowMs}`);
  }
}
