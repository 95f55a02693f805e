/**
 * Makes `<ms>-<seq>` ids the way Redis streams do: the wall clock in ms, and within one ms (or
 * when the clock steps back) the previous ms with seq + 1, so ids only ever increase.
 */
export class StreamIdGenerator {
  private lastMs = 0;
  private lastSeq = 0;

  next(nowMs: number): string {
    if (nowMs > this.lastMs) {
      this.lastMs = nowMs;
      this.lastSeq = 0;
    } else {
      this.lastSeq += 1;
    }
    return `${this.lastMs}-${this.lastSeq}`;
  }
}
