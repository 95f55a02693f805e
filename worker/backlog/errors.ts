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
