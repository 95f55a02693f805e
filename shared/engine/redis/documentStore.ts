import { engineErrors } from '../../errors';
import type { DocumentPage, DocumentStore } from '../engine';
import { pageOfIds } from '../documentPage';
import type { RedisKeys } from './keys';
import type { ScriptedRedis } from './scripts';

/** Compare-and-set attempts before update gives up (only under extreme contention). */
const MAX_UPDATE_ATTEMPTS = 100;

/**
 * Durable JSON documents, one hash per collection (field = id). These hashes are the backlog's
 * data and have no expiry. update() is optimistic: read, apply fn, compare-and-set in Lua,
 * and on conflict re-read and re-apply, so concurrent updates from several workers all land.
 */
export class RedisDocumentStore implements DocumentStore {
  constructor(
    private readonly redis: ScriptedRedis,
    private readonly keys: RedisKeys,
  ) {}

  async get<T>(collection: string, id: string): Promise<T | undefined> {
    const json = await this.redis.hget(this.keys.collection(collection), id);
    return json === null ? undefined : (JSON.parse(json) as T);
  }

  async list<T>(collection: string): Promise<T[]> {
    const values = await this.redis.hvals(this.keys.collection(collection));
    return values.map((json) => JSON.parse(json) as T);
  }

  async page<T>(
    collection: string,
    afterId: string | undefined,
    limit: number,
  ): Promise<DocumentPage<T>> {
    const key = this.keys.collection(collection);
    const { ids, more } = pageOfIds(await this.redis.hkeys(key), afterId, limit);
    if (ids.length === 0) return { docs: [], more };
    const values = await this.redis.hmget(key, ...ids);
    // A document cannot vanish (there is no delete), but a page never carries holes.
    const docs = values
      .filter((json): json is string => json !== null)
      .map((json) => JSON.parse(json) as T);
    return { docs, more };
  }

  async insert<T>(collection: string, id: string, doc: T): Promise<T> {
    const stored = await this.redis.insertDocument(
      this.keys.collection(collection),
      id,
      JSON.stringify(doc),
    );
    return JSON.parse(stored) as T;
  }

  async update<T>(collection: string, id: string, fn: (doc: T) => T): Promise<T | undefined> {
    const key = this.keys.collection(collection);
    for (let attempt = 1; attempt <= MAX_UPDATE_ATTEMPTS; attempt += 1) {
      const current = await this.redis.hget(key, id);
      if (current === null) return undefined;
      const next = JSON.stringify(fn(JSON.parse(current) as T));
      const outcome = await this.redis.updateDocument(key, id, current, next);
      if (outcome === 1) return JSON.parse(next) as T;
      if (outcome === -1) return undefined;
      // Conflict: another writer got in between. Back off a little once it keeps happening.
      if (attempt > 3) await new Promise((resolve) => setTimeout(resolve, Math.random() * attempt));
    }
    throw engineErrors.conflict(`Document ${collection}/${id} kept changing; update abandoned`);
  }
}
