import type { Engine } from '../../shared/engine/engine';
import { sleep } from '../../devSupport/waitFor';
import { CurrentEngine, unique } from './support';

/** The SetsPort part of the engine contract. */
export function describeSetsContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
  });

  describe('member sets with TTL', () => {
    it('adds up to the bound, tells present members apart, removes and lists', async () => {
      const key = unique('set');
      expect(await engine.sets.members(key)).toEqual([]);
      expect(await engine.sets.add(key, 'a', 10_000, 2)).toBe('added');
      expect(await engine.sets.add(key, 'a', 10_000, 2)).toBe('present');
      expect(await engine.sets.add(key, 'b', 10_000, 2)).toBe('added');
      expect(await engine.sets.add(key, 'c', 10_000, 2)).toBe('full');
      expect((await engine.sets.members(key)).sort()).toEqual(['a', 'b']);
      // A present member is still 'present' at the bound.
      expect(await engine.sets.add(key, 'b', 10_000, 2)).toBe('present');
      expect(await engine.sets.remove(key, 'a')).toBe(true);
      expect(await engine.sets.remove(key, 'a')).toBe(false);
      expect(await engine.sets.add(key, 'c', 10_000, 2)).toBe('added');
      expect((await engine.sets.members(key)).sort()).toEqual(['b', 'c']);
      await engine.sets.delete(key);
      expect(await engine.sets.members(key)).toEqual([]);
      expect(await engine.sets.touch(key, 10_000)).toBe(false);
    });

    it('holds the bound when writers race', async () => {
      const key = unique('set-race');
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => engine.sets.add(key, `m${i}`, 10_000, 5)),
      );
      expect(results.filter((r) => r === 'added')).toHaveLength(5);
      expect(await engine.sets.members(key)).toHaveLength(5);
    });

    it('expires the set as a whole; an add or a touch restarts its TTL', async () => {
      const fixed = unique('set-fixed');
      const touched = unique('set-touched');
      await engine.sets.add(fixed, 'x', 300, 10);
      await engine.sets.add(touched, 'y', 300, 10);
      for (let i = 0; i < 4; i++) {
        await sleep(120);
        expect(await engine.sets.touch(touched, 300)).toBe(true);
      }
      expect(await engine.sets.members(fixed)).toEqual([]);
      expect(await engine.sets.members(touched)).toEqual(['y']);
    });
  });
}
