/**
 * The backlog domain: a project has actors (who wants something), an actor has stories (what
 * they want), a story has features (how it is delivered), and a feature may have child features.
 * A whole project, with its tree, is one JSON document in the engine's store.
 */

export const WORK_STATUSES = ['todo', 'in_progress', 'done'] as const;
export type WorkStatus = (typeof WORK_STATUSES)[number];

export const PRIORITIES = ['low', 'medium', 'high'] as const;
export type Priority = (typeof PRIORITIES)[number];

export interface Feature {
  id: string;
  title: string;
  description: string;
  status: WorkStatus;
  createdAt: string;
  children: Feature[];
}

export interface Story {
  id: string;
  title: string;
  description: string;
  status: WorkStatus;
  priority: Priority;
  createdAt: string;
  updatedAt: string;
  features: Feature[];
}

export interface Actor {
  id: string;
  name: string;
  description: string;
  createdAt: string;
  stories: Story[];
}

export interface Project {
  id: string;
  name: string;
  description: string;
  createdAt: string;
  updatedAt: string;
  actors: Actor[];
}

/** What the store keeps per project: the tree plus bookkeeping that tools never return. */
export interface ProjectDocument extends Project {
  /** Request ids of the most recent story updates applied, so a redelivery is not re-applied. */
  appliedUpdates: string[];
}

export type EntityKind = 'project' | 'actor' | 'story' | 'feature';

/** The 'index' collection: which project holds an entity. */
export interface IndexEntry {
  kind: EntityKind;
  projectId: string;
  /**
   * The entity's own id (the document's key), so a page of the index names its entities
   * (completion by id prefix). Entries written before it was added lack it.
   */
  id?: string;
}

/** The 'project-names' collection: one entry per project, keyed by lowercased name + id. */
export interface ProjectNameEntry {
  projectId: string;
  name: string;
}

export interface ProjectSummary {
  id: string;
  name: string;
  description: string;
  createdAt: string;
  updatedAt: string;
  actorCount: number;
  storyCount: number;
  featureCount: number;
}

/** A story with where it lives, as get_story_tree returns it. */
export interface StoryTree extends Story {
  projectId: string;
  actorId: string;
}

export interface StoryPatch {
  title?: string;
  description?: string;
  status?: WorkStatus;
  priority?: Priority;
}
