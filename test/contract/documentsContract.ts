import type { Engine } from '../../shared/engine/engine';
import { CurrentEngine, unique } from './support';

/** The DocumentsPort part of the engine contract. */
export function describeDocumentsContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
  });

  describe('document store', () => {
    interface Counter {
      name: string;
      n: number;
      tags: string[];
    }

    it('answers undefined and [] for what does not exist', async () => {
      const collection = unique('missing');
      expect(await engine.store.get(collection, 'x')).toBeUndefined();
      expect(await engine.store.list(collection)).toEqual([]);
      expect(await engine.store.update(collection, 'x', (d) => d)).toBeUndefined();
      expect(await engine.store.get(collection, 'x')).toBeUndefined();
    });

    it('inserts idempotently, returning the stored document either way', async () => {
      const collection = unique('insert');
      const original: Counter = { name: 'first', n: 1, tags: ['a'] };
      expect(await engine.store.insert(collection, 'c1', original)).toEqual(original);
      const again = await engine.store.insert(collection, 'c1', {
        name: 'second',
        n: 2,
        tags: [],
      });
      expect(again).toEqual(original);
      expect(await engine.store.get(collection, 'c1')).toEqual(original);
    });

    it('hands out copies: mutating a passed or returned document changes nothing stored', async () => {
      const collection = unique('copies');
      const doc: Counter = { name: 'c', n: 1, tags: ['a'] };
      const inserted = await engine.store.insert(collection, 'c1', doc);
      doc.tags.push('from-input');
      inserted.tags.push('from-insert');
      const got = (await engine.store.get<Counter>(collection, 'c1')) as Counter;
      got.n = 99;
      const listed = await engine.store.list<Counter>(collection);
      listed[0].name = 'changed';
      const updated = (await engine.store.update<Counter>(collection, 'c1', (d) => d)) as Counter;
      updated.tags.push('from-update');

      expect(await engine.store.get(collection, 'c1')).toEqual({ name: 'c', n: 1, tags: ['a'] });
    });

    it('applies update functions and returns the stored result', async () => {
      const collection = unique('update');
      await engine.store.insert<Counter>(collection, 'c1', { name: 'c', n: 1, tags: [] });
      const updated = await engine.store.update<Counter>(collection, 'c1', (d) => ({
        ...d,
        n: d.n + 1,
        tags: [...d.tags, 'x'],
      }));
      expect(updated).toEqual({ name: 'c', n: 2, tags: ['x'] });
      expect(await engine.store.get(collection, 'c1')).toEqual(updated);
    });

    it('lands every one of 50 concurrent updates of one document', async () => {
      const collection = unique('race');
      await engine.store.insert<Counter>(collection, 'c1', { name: 'c', n: 0, tags: [] });
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          engine.store.update<Counter>(collection, 'c1', (d) => ({ ...d, n: d.n + 1 })),
        ),
      );
      expect(((await engine.store.get(collection, 'c1')) as Counter).n).toBe(50);
      // Each writer saw its own step: the results are 1..50, no lost or doubled update.
      const steps = results.map((r) => (r as Counter).n).sort((x, y) => x - y);
      expect(steps).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('pages a collection in id order, reading after an id, saying whether more follow', async () => {
      const collection = unique('paged');
      expect(await engine.store.page(collection, undefined, 10)).toEqual({
        docs: [],
        more: false,
      });
      const ids = ['d', 'a', 'e', 'c', 'b'];
      for (const id of ids) await engine.store.insert(collection, id, { id });
      const first = await engine.store.page<{ id: string }>(collection, undefined, 2);
      expect(first).toEqual({ docs: [{ id: 'a' }, { id: 'b' }], more: true });
      const second = await engine.store.page<{ id: string }>(collection, 'b', 2);
      expect(second).toEqual({ docs: [{ id: 'c' }, { id: 'd' }], more: true });
      expect(await engine.store.page(collection, 'd', 2)).toEqual({
        docs: [{ id: 'e' }],
        more: false,
      });
      // An id that is not there still places the page (between its neighbours).
      expect(await engine.store.page(collection, 'bb', 1)).toEqual({
        docs: [{ id: 'c' }],
        more: true,
      });
      expect(await engine.store.page(collection, 'e', 5)).toEqual({ docs: [], more: false });
    });

    it('keeps collections apart and lists every document of one', async () => {
      const projects = unique('projects');
      const actors = unique('actors');
      await engine.store.insert(projects, 'p1', { id: 'p1' });
      await engine.store.insert(projects, 'p2', { id: 'p2' });
      await engine.store.insert(actors, 'p1', { id: 'actor' });

      const listed = await engine.store.list<{ id: string }>(projects);
      expect(listed.map((d) => d.id).sort()).toEqual(['p1', 'p2']);
      expect(await engine.store.get(actors, 'p1')).toEqual({ id: 'actor' });
    });
  });
}
