// Over 450 lines: one store for the whole backlog domain (projects, features, stories, quotas), each operation short.
import type { DocumentStore } from '../../shared/engine/engine';
import { BacklogError, notFound, quotaReached } from './errors';
import { deriveEntityId, ID_PREFIX } from './ids';
import type {
  Actor,
  EntityKind,
  Feature,
  IndexEntry,
  Priority,
  Project,
  ProjectDocument,
  ProjectNameEntry,
  ProjectSummary,
  Story,
  StoryPatch,
  StoryTree,
  WorkStatus,
} from './model';

/** One document per project, holding its whole tree. */
export const PROJECTS_COLLECTION = 'projects';
/** Entity id -> { kind, projectId }, so a story or feature id leads to its project document. */
export const INDEX_COLLECTION = 'index';
/**
 * Project name (lowercased) + id -> the project, so completion finds projects by name prefix
 * reading only the matching entries (the store pages collections in key order).
 */
export const PROJECT_NAMES_COLLECTION = 'project-names';
/** What each token (sub) has created, for the write quotas. */
export const QUOTAS_COLLECTION = 'quotas';
/** How many story-update request ids a project remembers (redeliveries come soon after). */
const APPLIED_UPDATES_KEPT = 200;
/** How many counted entity ids a quota remembers, so a redelivered create is not counted twice. */
const COUNTED_KEPT = 200;
/** list_projects page size when none is asked for. */
export const DEFAULT_PAGE_SIZE = 50;

/** Write quotas per token (sub): MAX_PROJECTS_PER_TOKEN, MAX_ITEMS_PER_TOKEN. */
export interface BacklogLimits {
  maxProjectsPerToken: number;
  /** Actors, stories and features together. */
  maxItemsPerToken: number;
}

export const DEFAULT_BACKLOG_LIMITS: BacklogLimits = {
  maxProjectsPerToken: 100,
  maxItemsPerToken: 2000,
};

export interface BacklogStoreOptions {
  limits?: BacklogLimits;
  now?: () => Date;
}

/** One token's quota record. */
interface QuotaDocument {
  projects: number;
  items: number;
  /** Entity ids counted most recently (a retry of their create must not count again). */
  counted: string[];
}

type QuotaKind = 'projects' | 'items';

export interface ProjectPage {
  projects: ProjectSummary[];
  /** Set when more projects follow: the id to list after. */
  nextAfterId?: string;
}

export interface ProjectDocPage {
  projects: Project[];
  /** Set when more projects follow: the id to list after. */
  nextAfterId?: string;
}

/** Matches of a prefix query, in key order; `more` when matches beyond `limit` may exist. */
export interface PrefixMatches<T> {
  matches: T[];
  more: boolean;
}

export interface NewProject {
  name: string;
  description?: string;
}
export interface NewActor {
  name: string;
  description?: string;
}
export interface NewStory {
  title: string;
  description?: string;
  status?: WorkStatus;
  priority?: Priority;
}
export interface NewFeature {
  title: string;
  description?: string;
  status?: WorkStatus;
}

export type ActorInProject = Actor & { projectId: string };

/** An entity of the backlog, by kind and id. */
export interface EntityRef {
  kind: EntityKind;
  id: string;
}

/**
 * What a mutation changed, told to the store's change listeners once it is stored (again on a
 * redelivery, which changes nothing: listeners must bear a repeat).
 */
export interface BacklogChange {
  /** The entity the mutation created, if any: the list of entities grew. */
  created?: EntityRef;
  /**
   * Existing entities that now read differently: the updated one, and every entity whose tree
   * holds the changed or created one (parent features, story, actor, project), nearest first.
   */
  changed: EntityRef[];
}
export type FeatureInStory = Feature & {
  projectId: string;
  storyId: string;
  /** Set when the feature is a child of another feature. */
  parentFeatureId?: string;
};

/**
 * The backlog on top of the engine's DocumentStore (Redis in production, memory otherwise).
 *
 * Every mutation is one atomic DocumentStore.update of the project document, so concurrent
 * writers (several workers) lose nothing. Every mutation takes the request id of the command
 * that asks for it: created ids derive from it, and a create whose id already exists, or an
 * update already recorded, is a no-op, so an at-least-once redelivery applies its effect once.
 */
export class BacklogStore {
  private readonly limits: BacklogLimits;
  private readonly now: () => Date;
  private readonly changeListeners = new Set<(change: BacklogChange) => void>();

  constructor(
    private readonly docs: DocumentStore,
    options: BacklogStoreOptions = {},
  ) {
    this.limits = options.limits ?? DEFAULT_BACKLOG_LIMITS;
    this.now = options.now ?? (() => new Date());
  }

  /** One page of project summaries, in id order, after `afterId`. */
  /** Calls `listener` after each mutation of this store; until the returned function is called. */
  onChange(listener: (change: BacklogChange) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  async listProjects(page: { afterId?: string; limit?: number } = {}): Promise<ProjectPage> {
    const { docs, more } = await this.docs.page<ProjectDocument>(
      PROJECTS_COLLECTION,
      page.afterId,
      page.limit ?? DEFAULT_PAGE_SIZE,
    );
    const projects = docs.map(summarize);
    const last = projects[projects.length - 1];
    return more && last ? { projects, nextAfterId: last.id } : { projects };
  }

  /** One page of whole projects (their trees), in id order, after `afterId`. */
  async pageProjects(page: { afterId?: string; limit: number }): Promise<ProjectDocPage> {
    const { docs, more } = await this.docs.page<ProjectDocument>(
      PROJECTS_COLLECTION,
      page.afterId,
      page.limit,
    );
    const projects = docs.map(toProject);
    const last = projects[projects.length - 1];
    return more && last ? { projects, nextAfterId: last.id } : { projects };
  }

  /** The project, or undefined when there is none with this id. */
  async findProject(projectId: string): Promise<Project | undefined> {
    const doc = await this.docs.get<ProjectDocument>(PROJECTS_COLLECTION, projectId);
    return doc && toProject(doc);
  }

  /**
   * Ids of entities of this kind that start with `prefix`, in id order, at most `limit`.
   * Reads only index entries from the prefix on (ids carry their kind's prefix, e.g. sty_).
   */
  async idsByPrefix(
    kind: EntityKind,
    prefix: string,
    limit: number,
  ): Promise<PrefixMatches<string>> {
    const kindPrefix = `${ID_PREFIX[kind]}_`;
    // A prefix shorter than the kind's ("st") still selects every id of the kind.
    const from = prefix.length < kindPrefix.length ? kindPrefix : prefix;
    if (!from.startsWith(prefix) || !from.startsWith(kindPrefix))
      return { matches: [], more: false };
    const { docs, more } = await this.docs.page<IndexEntry>(
      INDEX_COLLECTION,
      justBefore(from),
      limit + 1,
    );
    const matches: string[] = [];
    for (const entry of docs) {
      if (entry.id === undefined) continue;
      if (!entry.id.startsWith(from)) return { matches, more: false };
      if (entry.kind === kind) matches.push(entry.id);
    }
    return matches.length > limit
      ? { matches: matches.slice(0, limit), more: true }
      : { matches, more: more && docs.length > limit };
  }

  /** Projects whose name starts with `prefix` (case-insensitive), in name order, at most `limit`. */
  async projectsByNamePrefix(
    prefix: string,
    limit: number,
  ): Promise<PrefixMatches<ProjectNameEntry>> {
    const from = prefix.trim().toLowerCase();
    const { docs, more } = await this.docs.page<ProjectNameEntry>(
      PROJECT_NAMES_COLLECTION,
      justBefore(from),
      limit + 1,
    );
    const matches: ProjectNameEntry[] = [];
    for (const entry of docs) {
      if (!nameKey(entry.name, entry.projectId).startsWith(from)) break;
      matches.push(entry);
    }
    return matches.length > limit
      ? { matches: matches.slice(0, limit), more: true }
      : { matches, more: more && docs.length > limit && matches.length === docs.length };
  }

  async getActor(actorId: string): Promise<ActorInProject> {
    const projectId = await this.locate('actor', actorId);
    const doc = await this.docs.get<ProjectDocument>(PROJECTS_COLLECTION, projectId);
    const actor = doc?.actors.find((a) => a.id === actorId);
    if (!actor) throw notFound('actor', actorId);
    return { ...actor, projectId };
  }

  async getFeature(featureId: string): Promise<FeatureInStory> {
    const projectId = await this.locate('feature', featureId);
    const doc = await this.docs.get<ProjectDocument>(PROJECTS_COLLECTION, projectId);
    const hit = doc && findFeature(doc, featureId);
    if (!hit) throw notFound('feature', featureId);
    return {
      ...hit.feature,
      projectId,
      storyId: hit.story.id,
      ...(hit.parent ? { parentFeatureId: hit.parent.id } : {}),
    };
  }

  /** `owner`: the token (sub) asking, whose project quota it counts against. */
  async createProject(requestId: string, input: NewProject, owner = ''): Promise<Project> {
    const id = deriveEntityId('project', requestId);
    await this.count(owner, 'projects', id);
    const at = this.timestamp();
    const fresh: ProjectDocument = {
      id,
      name: input.name,
      description: input.description ?? '',
      createdAt: at,
      updatedAt: at,
      actors: [],
      appliedUpdates: [],
    };
    // Insert returns the stored document when a first delivery already created it.
    const stored = await this.docs.insert(PROJECTS_COLLECTION, id, fresh);
    await this.index(id, 'project', id);
    await this.docs.insert<ProjectNameEntry>(PROJECT_NAMES_COLLECTION, nameKey(stored.name, id), {
      projectId: id,
      name: stored.name,
    });
    this.changed({ created: ref('project', id), changed: [] });
    return toProject(stored);
  }

  async getProject(projectId: string): Promise<Project> {
    const doc = await this.docs.get<ProjectDocument>(PROJECTS_COLLECTION, projectId);
    if (!doc) throw notFound('project', projectId);
    return toProject(doc);
  }

  async addActor(
    requestId: string,
    projectId: string,
    input: NewActor,
    owner = '',
  ): Promise<ActorInProject> {
    const id = deriveEntityId('actor', requestId);
    const at = this.timestamp();
    // Indexed before the write: an index entry without its entity only reads as "not found".
    if (!(await this.docs.get(PROJECTS_COLLECTION, projectId)))
      throw notFound('project', projectId);
    await this.count(owner, 'items', id);
    await this.index(id, 'actor', projectId);
    const actor = await this.counted(owner, 'items', id, () =>
      this.mutate(projectId, (doc) => {
        const existing = doc.actors.find((a) => a.id === id);
        if (existing) return existing;
        const created: Actor = {
          id,
          name: input.name,
          description: input.description ?? '',
          createdAt: at,
          stories: [],
        };
        doc.actors.push(created);
        doc.updatedAt = at;
        return created;
      }),
    );
    this.changed({ created: ref('actor', id), changed: [ref('project', projectId)] });
    return { ...actor, projectId };
  }

  async addStory(
    requestId: string,
    actorId: string,
    input: NewStory,
    owner = '',
  ): Promise<StoryTree> {
    const projectId = await this.locate('actor', actorId);
    const id = deriveEntityId('story', requestId);
    const at = this.timestamp();
    await this.count(owner, 'items', id);
    await this.index(id, 'story', projectId);
    const story = await this.counted(owner, 'items', id, () =>
      this.mutate(projectId, (doc) => {
        const actor = doc.actors.find((a) => a.id === actorId);
        if (!actor) throw notFound('actor', actorId);
        const existing = actor.stories.find((s) => s.id === id);
        if (existing) return existing;
        const created: Story = {
          id,
          title: input.title,
          description: input.description ?? '',
          status: input.status ?? 'todo',
          priority: input.priority ?? 'medium',
          createdAt: at,
          updatedAt: at,
          features: [],
        };
        actor.stories.push(created);
        doc.updatedAt = at;
        return created;
      }),
    );
    this.changed({
      created: ref('story', id),
      changed: [ref('actor', actorId), ref('project', projectId)],
    });
    return { ...story, projectId, actorId };
  }

  async getStory(storyId: string): Promise<StoryTree> {
    const projectId = await this.locate('story', storyId);
    const doc = await this.docs.get<ProjectDocument>(PROJECTS_COLLECTION, projectId);
    const found = doc && findStory(doc, storyId);
    if (!found) throw notFound('story', storyId);
    return { ...found.story, projectId, actorId: found.actor.id };
  }

  /** Sets the given fields only, so concurrent updates of different fields both land. */
  async updateStory(requestId: string, storyId: string, patch: StoryPatch): Promise<StoryTree> {
    const projectId = await this.locate('story', storyId);
    const at = this.timestamp();
    const found = await this.mutate(projectId, (doc) => {
      const hit = findStory(doc, storyId);
      if (!hit) throw notFound('story', storyId);
      const applied = doc.appliedUpdates ?? [];
      if (applied.includes(requestId)) return hit;
      const { story } = hit;
      if (patch.title !== undefined) story.title = patch.title;
      if (patch.description !== undefined) story.description = patch.description;
      if (patch.status !== undefined) story.status = patch.status;
      if (patch.priority !== undefined) story.priority = patch.priority;
      story.updatedAt = at;
      doc.updatedAt = at;
      doc.appliedUpdates = [...applied, requestId].slice(-APPLIED_UPDATES_KEPT);
      return hit;
    });
    this.changed({
      changed: [ref('story', storyId), ref('actor', found.actor.id), ref('project', projectId)],
    });
    return { ...found.story, projectId, actorId: found.actor.id };
  }

  async addFeature(
    requestId: string,
    storyId: string,
    input: NewFeature,
    owner = '',
  ): Promise<FeatureInStory> {
    const projectId = await this.locate('story', storyId);
    const id = deriveEntityId('feature', requestId);
    const at = this.timestamp();
    await this.count(owner, 'items', id);
    await this.index(id, 'feature', projectId);
    const placed = await this.counted(owner, 'items', id, () =>
      this.mutate(projectId, (doc) => {
        const hit = findStory(doc, storyId);
        if (!hit) throw notFound('story', storyId);
        const actorId = hit.actor.id;
        const existing = hit.story.features.find((f) => f.id === id);
        if (existing) return { feature: existing, actorId };
        const created = newFeature(id, input, at);
        hit.story.features.push(created);
        hit.story.updatedAt = at;
        doc.updatedAt = at;
        return { feature: created, actorId };
      }),
    );
    this.changed({
      created: ref('feature', id),
      changed: [ref('story', storyId), ref('actor', placed.actorId), ref('project', projectId)],
    });
    return { ...placed.feature, projectId, storyId };
  }

  async addChildFeature(
    requestId: string,
    parentFeatureId: string,
    input: NewFeature,
    owner = '',
  ): Promise<FeatureInStory> {
    const projectId = await this.locate('feature', parentFeatureId);
    const id = deriveEntityId('feature', requestId);
    const at = this.timestamp();
    await this.count(owner, 'items', id);
    await this.index(id, 'feature', projectId);
    const placed = await this.counted(owner, 'items', id, () =>
      this.mutate(projectId, (doc) => {
        const hit = findFeature(doc, parentFeatureId);
        if (!hit) throw notFound('feature', parentFeatureId);
        const existing = hit.feature.children.find((f) => f.id === id);
        const feature = existing ?? newFeature(id, input, at);
        if (!existing) {
          hit.feature.children.push(feature);
          hit.story.updatedAt = at;
          doc.updatedAt = at;
        }
        const lineage = featureLineage(doc, parentFeatureId);
        return {
          feature,
          storyId: hit.story.id,
          actorId: lineage?.actorId ?? '',
          ancestors: lineage?.features ?? [parentFeatureId],
        };
      }),
    );
    this.changed({
      created: ref('feature', id),
      changed: [
        ...placed.ancestors.map((featureId) => ref('feature', featureId)),
        ref('story', placed.storyId),
        ...(placed.actorId ? [ref('actor', placed.actorId)] : []),
        ref('project', projectId),
      ],
    });
    return { ...placed.feature, projectId, storyId: placed.storyId, parentFeatureId };
  }

  // ---- quotas ----

  /**
   * Counts a new entity against its owner's quota, or throws a quota error naming the limit.
   * One atomic update of the owner's quota record, so two workers racing cannot both take the
   * last place; an id counted already (a redelivered create) is not counted again.
   */
  private async count(owner: string, kind: QuotaKind, id: string): Promise<void> {
    const key = quotaKey(owner);
    const max =
      kind === 'projects' ? this.limits.maxProjectsPerToken : this.limits.maxItemsPerToken;
    await this.docs.insert<QuotaDocument>(QUOTAS_COLLECTION, key, {
      projects: 0,
      items: 0,
      counted: [],
    });
    let refused = false;
    await this.docs.update<QuotaDocument>(QUOTAS_COLLECTION, key, (quota) => {
      refused = false;
      if (quota.counted.includes(id)) return quota;
      if (quota[kind] >= max) {
        refused = true;
        return quota;
      }
      return {
        ...quota,
        [kind]: quota[kind] + 1,
        counted: [...quota.counted, id].slice(-COUNTED_KEPT),
      };
    });
    if (refused) throw quotaReached(kind, max);
  }

  /** Runs a create counted with count(); if it fails as not found, gives the place back. */
  private async counted<R>(
    owner: string,
    kind: QuotaKind,
    id: string,
    create: () => Promise<R>,
  ): Promise<R> {
    try {
      return await create();
    } catch (err) {
      if (err instanceof BacklogError) {
        await this.docs.update<QuotaDocument>(QUOTAS_COLLECTION, quotaKey(owner), (quota) =>
          quota.counted.includes(id)
            ? {
                ...quota,
                [kind]: Math.max(0, quota[kind] - 1),
                counted: quota.counted.filter((counted) => counted !== id),
              }
            : quota,
        );
      }
      throw err;
    }
  }

  // ---- internals ----

  /** Tells the listeners; one that throws is not this mutation's failure (it is stored). */
  private changed(change: BacklogChange): void {
    for (const listener of this.changeListeners) {
      try {
        listener(change);
      } catch {
        // A listener's own fault; the mutation stands.
      }
    }
  }

  private timestamp(): string {
    return this.now().toISOString();
  }

  private async index(id: string, kind: EntityKind, projectId: string): Promise<void> {
    await this.docs.insert<IndexEntry>(INDEX_COLLECTION, id, { kind, projectId, id });
  }

  /** The project holding an entity of this kind, or a not-found error naming the id. */
  private async locate(kind: EntityKind, id: string): Promise<string> {
    const entry = await this.docs.get<IndexEntry>(INDEX_COLLECTION, id);
    if (!entry || entry.kind !== kind) throw notFound(kind, id);
    return entry.projectId;
  }

  /**
   * Runs `change` on a private copy of the project document inside one atomic update and
   * returns what it returned. `change` may run more than once (the Redis store retries on a
   * conflicting write), so it only touches the document it is given. A BacklogError thrown by
   * it leaves the document as it was and is rethrown here.
   */
  private async mutate<R>(projectId: string, change: (doc: ProjectDocument) => R): Promise<R> {
    let outcome: { value: R } | { error: BacklogError } | undefined;
    const stored = await this.docs.update<ProjectDocument>(
      PROJECTS_COLLECTION,
      projectId,
      (current) => {
        const doc = structuredClone(current);
        try {
          outcome = { value: change(doc) };
          return doc;
        } catch (err) {
          if (!(err instanceof BacklogError)) throw err;
          outcome = { error: err };
          return current;
        }
      },
    );
    if (!stored || !outcome) throw notFound('project', projectId);
    if ('error' in outcome) throw outcome.error;
    return structuredClone(outcome.value);
  }
}

/** A project-names key: the name lowercased, then the id (NUL sorts before any name char). */
function nameKey(name: string, projectId: string): string {
  return `${name.toLowerCase()}\u0000${projectId}`;
}

/**
 * The greatest key below every key that starts with `prefix` (page() lists keys after it), or
 * undefined for the empty prefix (from the start).
 */
function justBefore(prefix: string): string | undefined {
  if (prefix.length === 0) return undefined;
  const last = prefix.charCodeAt(prefix.length - 1);
  if (last === 0) return prefix.slice(0, -1);
  return `${prefix.slice(0, -1)}${String.fromCharCode(last - 1)}\uffff`;
}

/** The quota record's id: the token's sub (unnamed callers share one). */
function quotaKey(owner: string): string {
  return owner === '' ? 'anonymous' : `sub:${owner}`;
}

function newFeature(id: string, input: NewFeature, at: string): Feature {
  return {
    id,
    title: input.title,
    description: input.description ?? '',
    status: input.status ?? 'todo',
    createdAt: at,
    children: [],
  };
}

function toProject(doc: ProjectDocument): Project {
  const { appliedUpdates: _bookkeeping, ...project } = doc;
  return project;
}

function summarize(doc: ProjectDocument): ProjectSummary {
  let storyCount = 0;
  let featureCount = 0;
  for (const actor of doc.actors) {
    storyCount += actor.stories.length;
    for (const story of actor.stories) featureCount += countFeatures(story.features);
  }
  return {
    id: doc.id,
    name: doc.name,
    description: doc.description,
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
    actorCount: doc.actors.length,
    storyCount,
    featureCount,
  };
}

export function countFeatures(features: Feature[]): number {
  return features.reduce((n, f) => n + 1 + countFeatures(f.children), 0);
}

function findStory(doc: Project, storyId: string): { actor: Actor; story: Story } | undefined {
  for (const actor of doc.actors) {
    const story = actor.stories.find((s) => s.id === storyId);
    if (story) return { actor, story };
  }
  return undefined;
}

function findFeature(
  doc: Project,
  featureId: string,
): { story: Story; feature: Feature; parent?: Feature } | undefined {
  for (const actor of doc.actors) {
    for (const story of actor.stories) {
      const hit = findInFeatures(story.features, featureId, undefined);
      if (hit) return { story, ...hit };
    }
  }
  return undefined;
}

function ref(kind: EntityKind, id: string): EntityRef {
  return { kind, id };
}

/**
 * Where a feature sits: its actor, and the ids of the features from it up to its story's
 * top-level one (itself first).
 */
function featureLineage(
  doc: Project,
  featureId: string,
): { actorId: string; features: string[] } | undefined {
  const walk = (features: Feature[], path: string[]): string[] | undefined => {
    for (const feature of features) {
      const here = [feature.id, ...path];
      if (feature.id === featureId) return here;
      const below = walk(feature.children, here);
      if (below) return below;
    }
    return undefined;
  };
  for (const actor of doc.actors) {
    for (const story of actor.stories) {
      const features = walk(story.features, []);
      if (features) return { actorId: actor.id, features };
    }
  }
  return undefined;
}

function findInFeatures(
  features: Feature[],
  id: string,
  parent: Feature | undefined,
): { feature: Feature; parent?: Feature } | undefined {
  for (const feature of features) {
    if (feature.id === id) return parent ? { feature, parent } : { feature };
    const child = findInFeatures(feature.children, id, feature);
    if (child) return child;
  }
  return undefined;
}
