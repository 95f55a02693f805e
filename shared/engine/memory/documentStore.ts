import type { DocumentPage, DocumentStore } from '../engine';
import { pageOfIds } from '../documentPage';

/**
 * Documents held as JSON text, so every read hands out a fresh copy and no caller can change
 * stored state through an object it got back or passed in. Each call runs to completion
 * without yielding, which makes `update` atomic in one process.
 */
export class MemoryDocumentStore implements DocumentStore {
  private readonly collections = new Map<string, Map<string, string>>();

  async get<T>(collection: string, id: string): Promise<T | undefined> {
    const json = this.collections.get(collection)?.get(id);
    return json === undefined ? undefined : (JSON.parse(json) as T);
  }

  async list<T>(collection: string): Promise<T[]> {
    const documents = this.collections.get(collection);
    if (!documents) return [];
    return [...documents.values()].map((json) => JSON.parse(json) as T);
  }

  async page<T>(
    collection: string,
    afterId: string | undefined,
    limit: number,
  ): Promise<DocumentPage<T>> {
    const documents = this.collections.get(collection);
    if (!documents) return { docs: [], more: false };
    const { ids, more } = pageOfIds([...documents.keys()], afterId, limit);
    return { docs: ids.map((id) => JSON.parse(documents.get(id) as string) as T), more };
  }

  async insert<T>(collection: string, id: string, doc: T): Promise<T> {
    const documents = this.collection(collection);
    let json = documents.get(id);
    if (json === undefined) {
      json = JSON.stringify(doc);
      documents.set(id, json);
    }
    return JSON.parse(json) as T;
  }

  async update<T>(collection: string, id: string, fn: (doc: T) => T): Promise<T | undefined> {
    const documents = this.collections.get(collection);
    const json = documents?.get(id);
    if (!documents || json === undefined) return undefined;
    const updated = JSON.stringify(fn(JSON.parse(json) as T));
    documents.set(id, updated);
    return JSON.parse(updated) as T;
  }

  private collection(name: string): Map<string, string> {
    let documents = this.collections.get(name);
    if (!documents) {
      documents = new Map();
      this.collections.set(name, documents);
    }
    return documents;
  }
}
