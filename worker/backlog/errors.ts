import type { EntityKind } from './model';

const LABEL: Record<EntityKind, string> = {
  project: 'Project',
  actor: 'Actor',
  story: 'Story',
  feature: 'Feature',
};

/** An expected domain failure (unknown id); tools turn it into an isError result. */
export class BacklogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BacklogError';
  }
}

export function notFound(kind: EntityKind, id: string): BacklogError {
  return new BacklogError(`${LABEL[kind]} not found: ${id}`);
}

/** A token reached one of its write quotas; it names the limit and its setting. */
export function quotaReached(kind: 'projects' | 'items', max: number): BacklogError {
  const what =
    kind === 'projects'
      ? `${max} projects (MAX_PROJECTS_PER_TOKEN)`
      : `${max} actors, stories and features (MAX_ITEMS_PER_TOKEN)`;
  return new BacklogError(`Quota reached: this token may create at most ${what}`);
}
