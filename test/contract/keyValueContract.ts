import type { Engine } from '../../shared/engine/engine';
import { sleep } from '../../devSupport/waitFor';
import { CurrentEngine, unique } from './support';

/** The KeyValuePort part of the engine contract. */
export function describeKeyValueContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
  });

  describe('key/value store with TTL', () => {
    it('sets, gets and deletes values, honouring the set modes', async () => {
      const key = unique('kv');
      expect(await engine.kv.get(key)).toBeUndefined();
      expect(await engine.kv.set(key, 'a', 10_000, 'ifPresent')).toBe(false);
      expect(await engine.kv.get(key)).toBeUndefined();
      expect(await engine.kv.set(key, 'a', 10_000, 'ifAbsent')).toBe(true);
      expect(await engine.kv.set(key, 'b', 10_000, 'ifAbsent')).toBe(false);
      expect(await engine.kv.get(key)).toBe('a');
      expect(await engine.kv.set(key, 'c', 10_000, 'ifPresent')).toBe(true);
      expect(await engine.kv.set(key, 'd', 10_000)).toBe(true);
      expect(await engine.kv.get(key)).toBe('d');
      expect(await engine.kv.delete(key)).toBe(true);
      expect(await engine.kv.delete(key)).toBe(false);
      expect(await engine.kv.get(key)).toBeUndefined();
    });

    it('lets exactly one of racing ifAbsent writers win (a task ends once)', async () => {
      const key = unique('kv-race');
      const writers = Array.from({ length: 20 }, (_, i) =>
        engine.kv.set(key, `writer-${i}`, 10_000, 'ifAbsent'),
      );
      const won = (await Promise.all(writers)).flatMap((stored, i) => (stored ? [i] : []));
      expect(won).toHaveLength(1);
      expect(await engine.kv.get(key)).toBe(`writer-${won[0]}`);
    });

    it('expires values, and a get with refreshTtlMs or a touch slides the expiry', async () => {
      const fixed = unique('kv-fixed');
      const sliding = unique('kv-sliding');
      const touched = unique('kv-touched');
      await engine.kv.set(fixed, 'x', 300);
      await engine.kv.set(sliding, 'y', 300);
      await engine.kv.set(touched, 'z', 300);
      for (let i = 0; i < 4; i++) {
        await sleep(120);
        expect(await engine.kv.get(sliding, 300)).toBe('y');
        expect(await engine.kv.touch(touched, 300)).toBe(true);
      }
      expect(await engine.kv.get(fixed)).toBeUndefined();
      expect(await engine.kv.touch(fixed, 300)).toBe(false);
      expect(await engine.kv.get(sliding)).toBe('y');
      expect(await engine.kv.get(touched)).toBe('z');
    });

    it('refreshes and deletes a lock only for the owner it names', async () => {
      const key = unique('kv-lock');
      expect(await engine.kv.set(key, 'owner-1', 10_000, 'ifAbsent')).toBe(true);
      expect(await engine.kv.touch(key, 10_000, 'owner-2')).toBe(false);
      expect(await engine.kv.delete(key, 'owner-2')).toBe(false);
      expect(await engine.kv.get(key)).toBe('owner-1');
      expect(await engine.kv.touch(key, 10_000, 'owner-1')).toBe(true);
      expect(await engine.kv.delete(key, 'owner-1')).toBe(true);
      expect(await engine.kv.set(key, 'owner-2', 10_000, 'ifAbsent')).toBe(true);
    });
  });
}
