import { setImmediate as nextTurn } from 'node:timers/promises';
import type { DocumentStore } from '../../../shared/engine/engine';
import { MemoryDocumentStore } from '../../../shared/engine/memory/documentStore';
import { BacklogError } from '../../../worker/backlog/errors';
import { deriveEntityId } from '../../../worker/backlog/ids';
import { BacklogStore, INDEX_COLLECTION, PROJECTS_COLLECTION } from '../../../worker/backlog/store';

/**
 * A DocumentStore whose update reads, yields, then writes only if nobody wrote in between
 * (else re-runs fn on the newer document): the optimistic scheme of a Redis WATCH/MULTI or
 * Lua CAS store, so concurrent updates really interleave here.
 */
class CasDocumentStore implements DocumentStore {
  private readonly inner = new MemoryDocumentStore();
  private readonly versions = new Map<string, number>();
  retries = 0;

  get<T>(collection: string, id: string) {
    return this.inner.get<T>(collection, id);
  }
  list<T>(collection: string) {
    return this.inner.list<T>(collection);
  }
  page<T>(collection: string, afterId: string | undefined, limit: number) {
    return this.inner.page<T>(collection, afterId, limit);
  }
  insert<T>(collection: string, id: string, doc: T) {
    return this.inner.insert<T>(collection, id, doc);
  }
  async update<T>(collection: string, id: string, fn: (doc: T) => T): Promise<T | undefined> {
    const key = `${collection}/${id}`;
    for (;;) {
      const version = this.versions.get(key) ?? 0;
      const current = await this.inner.get<T>(collection, id);
      if (current === undefined) return undefined;
      const next = fn(current);
      await nextTurn();
      if ((this.versions.get(key) ?? 0) !== version) {
        this.retries += 1;
        continue;
      }
      this.versions.set(key, version + 1);
      return this.inner.update<T>(collection, id, () => next);
    }
  }
}

describe('BacklogStore', () => {
  let docs: MemoryDocumentStore;
  let store: BacklogStore;

  beforeEach(() => {
    docs = new MemoryDocumentStore();
    store = new BacklogStore(docs);
  });

  async function seed() {
    const project = await store.createProject('r-project', { name: 'Shop' });
    const actor = await store.addActor('r-actor', project.id, { name: 'Customer' });
    const story = await store.addStory('r-story', actor.id, { title: 'Pay' });
    const feature = await store.addFeature('r-feature', story.id, { title: 'Form' });
    const child = await store.addChildFeature('r-child', feature.id, { title: 'Check' });
    return { project, actor, story, feature, child };
  }

  it('derives entity ids from the request id, deterministically', () => {
    expect(deriveEntityId('project', 'abc')).toBe(deriveEntityId('project', 'abc'));
    expect(deriveEntityId('project', 'abc')).toMatch(/^prj_[0-9a-f]{24}$/);
    expect(deriveEntityId('project', 'abc')).not.toBe(deriveEntityId('project', 'abd'));
    expect(deriveEntityId('feature', 'abc', 0)).not.toBe(deriveEntityId('feature', 'abc', 1));
    expect(deriveEntityId('story', 'abc')).toMatch(/^sty_/);
  });

  it('keeps one document per project and indexes every entity', async () => {
    const { project, actor, story, feature, child } = await seed();
    expect(await docs.list(PROJECTS_COLLECTION)).toHaveLength(1);
    for (const [id, kind] of [
      [project.id, 'project'],
      [actor.id, 'actor'],
      [story.id, 'story'],
      [feature.id, 'feature'],
      [child.id, 'feature'],
    ]) {
      expect(await docs.get(INDEX_COLLECTION, id)).toEqual({ kind, projectId: project.id, id });
    }
    // Bookkeeping stays out of what tools return.
    expect(await store.getProject(project.id)).not.toHaveProperty('appliedUpdates');
  });

  it('applies every create once when its request is repeated', async () => {
    const first = await seed();
    const again = await seed();
    expect(again.project.id).toBe(first.project.id);
    expect(again.child.id).toBe(first.child.id);
    const tree = await store.getProject(first.project.id);
    expect(tree.actors).toHaveLength(1);
    expect(tree.actors[0].stories).toHaveLength(1);
    expect(tree.actors[0].stories[0].features).toHaveLength(1);
    expect(tree.actors[0].stories[0].features[0].children).toHaveLength(1);
    expect((await store.listProjects()).projects).toHaveLength(1);
  });

  it('applies a repeated story update once, even after a newer update', async () => {
    const { story } = await seed();
    await store.updateStory('u1', story.id, { title: 'First' });
    await store.updateStory('u2', story.id, { title: 'Second' });
    // u1 redelivered late: must not put the old title back.
    const after = await store.updateStory('u1', story.id, { title: 'First' });
    expect(after.title).toBe('Second');
  });

  it('names the unknown id in its errors', async () => {
    const { project, story } = await seed();
    await expect(store.getProject('prj_x')).rejects.toThrow(
      new BacklogError('Project not found: prj_x'),
    );
    await expect(store.addActor('r', 'prj_x', { name: 'A' })).rejects.toThrow(
      'Project not found: prj_x',
    );
    await expect(store.addStory('r', 'act_x', { title: 'S' })).rejects.toThrow(
      'Actor not found: act_x',
    );
    await expect(store.getStory(project.id)).rejects.toThrow(`Story not found: ${project.id}`);
    await expect(store.addChildFeature('r', story.id, { title: 'F' })).rejects.toThrow(
      `Feature not found: ${story.id}`,
    );
  });

  it('returns copies: changing a result does not change the store', async () => {
    const { project } = await seed();
    const tree = await store.getProject(project.id);
    tree.actors[0].name = 'Changed';
    expect((await store.getProject(project.id)).actors[0].name).toBe('Customer');
  });

  it('loses no write when updates of one story race on a compare-and-set store', async () => {
    const cas = new CasDocumentStore();
    const racing = new BacklogStore(cas);
    const project = await racing.createProject('p', { name: 'Shop' });
    const actor = await racing.addActor('a', project.id, { name: 'Customer' });
    const story = await racing.addStory('s', actor.id, { title: 'Pay' });
    await Promise.all([
      racing.updateStory('u1', story.id, { title: 'Pay by card' }),
      racing.updateStory('u2', story.id, { status: 'done' }),
      racing.updateStory('u3', story.id, { priority: 'high' }),
      racing.addFeature('f1', story.id, { title: 'Form' }),
      racing.addFeature('f2', story.id, { title: 'Receipt' }),
    ]);
    expect(cas.retries).toBeGreaterThan(0);
    const after = await racing.getStory(story.id);
    expect(after).toMatchObject({ title: 'Pay by card', status: 'done', priority: 'high' });
    expect(after.features.map((f) => f.title).sort()).toEqual(['Form', 'Receipt']);
  });

  it('lists projects a page at a time, in id order, each once', async () => {
    for (let i = 0; i < 7; i += 1) await store.createProject(`p${i}`, { name: `P${i}` });
    const seen: string[] = [];
    const sizes: number[] = [];
    let afterId: string | undefined;
    do {
      const page = await store.listProjects({ afterId, limit: 3 });
      sizes.push(page.projects.length);
      seen.push(...page.projects.map((p) => p.id));
      afterId = page.nextAfterId;
    } while (afterId);
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(7);
    expect((await store.listProjects()).nextAfterId).toBeUndefined();
  });

  describe('write quotas per token', () => {
    const limited = (docsStore: DocumentStore = docs) =>
      new BacklogStore(docsStore, { limits: { maxProjectsPerToken: 2, maxItemsPerToken: 3 } });

    it('refuses a project past MAX_PROJECTS_PER_TOKEN, per owner, retries not counted', async () => {
      const quota = limited();
      await quota.createProject('a1', { name: 'A1' }, 'alice');
      await quota.createProject('a2', { name: 'A2' }, 'alice');
      // A redelivered create is applied once and not counted again.
      await quota.createProject('a2', { name: 'A2' }, 'alice');
      await expect(quota.createProject('a3', { name: 'A3' }, 'alice')).rejects.toThrow(
        new BacklogError(
          'Quota reached: this token may create at most 2 projects (MAX_PROJECTS_PER_TOKEN)',
        ),
      );
      await quota.createProject('b1', { name: 'B1' }, 'bob');
      expect((await quota.listProjects()).projects.map((p) => p.name).sort()).toEqual([
        'A1',
        'A2',
        'B1',
      ]);
    });

    it('counts actors, stories and features against MAX_ITEMS_PER_TOKEN', async () => {
      const quota = limited();
      const project = await quota.createProject('p', { name: 'P' }, 'alice');
      // A create that fails (unknown id) uses no place.
      await expect(quota.addStory('s0', 'act_nope', { title: 'S' }, 'alice')).rejects.toThrow(
        'Actor not found',
      );
      const actor = await quota.addActor('a', project.id, { name: 'A' }, 'alice');
      const story = await quota.addStory('s', actor.id, { title: 'S' }, 'alice');
      await quota.addFeature('f', story.id, { title: 'F' }, 'alice');
      await expect(quota.addFeature('g', story.id, { title: 'G' }, 'alice')).rejects.toThrow(
        /at most 3 actors, stories and features \(MAX_ITEMS_PER_TOKEN\)/,
      );
      await quota.addFeature('g', story.id, { title: 'G' }, 'bob');
      expect((await quota.getStory(story.id)).features.map((f) => f.title)).toEqual(['F', 'G']);
    });

    it('holds when creates race on a compare-and-set store (two workers)', async () => {
      const cas = new CasDocumentStore();
      const quota = limited(cas);
      const outcomes = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => quota.createProject(`r${i}`, { name: `R${i}` }, 'eve')),
      );
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
      expect((await quota.listProjects()).projects).toHaveLength(2);
    });
  });
  describe('prefix queries (completion)', () => {
    it('idsByPrefix reads only the index entries from the prefix on', async () => {
      const memory = new MemoryDocumentStore();
      const pages: { afterId?: string; limit: number }[] = [];
      const spied = Object.assign(Object.create(memory) as MemoryDocumentStore, {
        page: <T>(collection: string, afterId: string | undefined, limit: number) => {
          pages.push({ ...(afterId !== undefined ? { afterId } : {}), limit });
          return memory.page<T>(collection, afterId, limit);
        },
      });
      const indexed = new BacklogStore(spied);
      const project = await indexed.createProject('p', { name: 'P' });
      const actor = await indexed.addActor('a', project.id, { name: 'A' });
      const stories: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        stories.push((await indexed.addStory(`s${i}`, actor.id, { title: `S${i}` })).id);
      }
      stories.sort();
      const all = await indexed.idsByPrefix('story', '', 3);
      expect(all).toEqual({ matches: stories.slice(0, 3), more: true });
      expect(pages.at(-1)).toEqual({ afterId: expect.stringMatching(/^sty\^/), limit: 4 });
      expect(await indexed.idsByPrefix('story', stories[2]!, 3)).toEqual({
        matches: [stories[2]],
        more: false,
      });
      expect(await indexed.idsByPrefix('story', 'act_', 3)).toEqual({ matches: [], more: false });
      expect((await indexed.idsByPrefix('actor', 'a', 3)).matches).toEqual([actor.id]);
    });

    it('projectsByNamePrefix matches names case-insensitively, in name order', async () => {
      const b = await store.createProject('b', { name: 'shop B' });
      const a = await store.createProject('a', { name: 'Shop A' });
      await store.createProject('c', { name: 'Warehouse' });
      const found = await store.projectsByNamePrefix('SHOP', 10);
      expect(found).toEqual({
        matches: [
          { projectId: a.id, name: 'Shop A' },
          { projectId: b.id, name: 'shop B' },
        ],
        more: false,
      });
      expect((await store.projectsByNamePrefix('shop', 1)).more).toBe(true);
      expect((await store.projectsByNamePrefix('x', 10)).matches).toEqual([]);
    });

    it('getActor and getFeature give the entity with where it lives', async () => {
      const { project, actor, story, feature, child } = await seed();
      expect(await store.getActor(actor.id)).toMatchObject({ id: actor.id, projectId: project.id });
      expect(await store.getFeature(child.id)).toMatchObject({
        id: child.id,
        storyId: story.id,
        projectId: project.id,
        parentFeatureId: feature.id,
      });
      expect(await store.getFeature(feature.id)).not.toHaveProperty('parentFeatureId');
      await expect(store.getActor(story.id)).rejects.toThrow(`Actor not found: ${story.id}`);
      await expect(store.getFeature('fea_x')).rejects.toThrow('Feature not found: fea_x');
    });
  });
});
