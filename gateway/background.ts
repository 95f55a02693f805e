/**
 * Work a component starts without waiting for it (a replay, a catch-up, registering again,
 * releasing a closed stream), kept so that its close() can wait for all of it.
 */
export class BackgroundWork {
  private readonly pending = new Set<Promise<unknown>>();

  /** Tracks `work` until it settles; returns it. */
  run<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    void work.then(
      () => this.pending.delete(work),
      () => this.pending.delete(work),
    );
    return work;
  }

  /** Resolves once everything tracked now (and started meanwhile) has settled. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}
