import type { Engine } from '../../shared/engine/engine';
import { waitFor } from '../../devSupport/waitFor';
import { CurrentEngine, unique } from './support';

/** The CountersPort part of the engine contract. */
export function describeCountersContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
  });

  describe('window counters', () => {
    it('counts hits in a window, concurrent ones exactly, then starts again', async () => {
      const key = unique('rl');
      const before = Date.now();
      const first = await engine.counters.add(key, 400);
      expect(first.hits).toBe(1);
      expect(first.resetAt).toBeGreaterThanOrEqual(before + 300);
      expect(first.resetAt).toBeLessThanOrEqual(Date.now() + 400);
      const counts = await Promise.all(
        Array.from({ length: 20 }, () => engine.counters.add(key, 400)),
      );
      expect(counts.map((c) => c.hits).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 20 }, (_, i) => i + 2),
      );
      // The window does not slide with hits: it ends where the first hit put it.
      for (const c of counts) expect(Math.abs(c.resetAt - first.resetAt)).toBeLessThan(100);
      expect((await engine.counters.add(key, 400, -1)).hits).toBe(20);
      await waitFor(() => Date.now() > first.resetAt + 50, 2000, 'the window to end');
      expect((await engine.counters.add(key, 400)).hits).toBe(1);
    });

    it('keeps keys apart, and reset ends a window', async () => {
      const a = unique('rl-a');
      const b = unique('rl-b');
      await engine.counters.add(a, 10_000);
      await engine.counters.add(a, 10_000);
      expect((await engine.counters.add(b, 10_000)).hits).toBe(1);
      await engine.counters.reset(a);
      expect((await engine.counters.add(a, 10_000)).hits).toBe(1);
    });
  });
}
