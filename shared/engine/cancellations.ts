import { truncate } from '../text';
import type { Engine } from './engine';
import { CONTROL_EVENTS, topics } from '../protocol';

/** A seed-API cancel on topics.workers: one call of a connection, or all of its calls. */
export interface SeedCancel {
  connectionId: string;
  /** Our requestId, or the client's own message id, of the call to cancel; absent: every call. */
  target?: string | number;
  reason?: string;
}

/** Tells every worker to cancel a seed-API call (or all calls of a connection). */
export async function publishSeedCancel(
  engine: Pick<Engine, 'publish'>,
  cancel: SeedCancel,
): Promise<void> {
  // Every worker hears it, and the reason is echoed in the call's error: bounded.
  const bounded =
    cancel.reason === undefined ? cancel : { ...cancel, reason: truncate(cancel.reason, 200) };
  await engine.publish(topics.workers, CONTROL_EVENTS.seedCancel, JSON.stringify(bounded));
}

/** The seed cancel in the data of a CONTROL_EVENTS.seedCancel, or undefined when malformed. */
export function parseSeedCancel(data: string): SeedCancel | undefined {
  try {
    const cancel = JSON.parse(data) as SeedCancel;
    return typeof cancel.connectionId === 'string' ? cancel : undefined;
  } catch {
    return undefined;
  }
}
