import { createHash } from 'node:crypto';
import type { EntityKind } from './model';

export const ID_PREFIX: Record<EntityKind, string> = {
  project: 'prj',
  actor: 'act',
  story: 'sty',
  feature: 'fea',
};

/**
 * The id of the `index`-th entity of this kind created by one request. Derived, not random, so a
 * redelivered command computes the same id and its create becomes a no-op (applied once).
 */
export function deriveEntityId(kind: EntityKind, requestId: string, index = 0): string {
  const digest = createHash('sha256').update(`${requestId}\n${kind}\n${index}`).digest('hex');
  return `${ID_PREFIX[kind]}_${digest.slice(0, 24)}`;
}
