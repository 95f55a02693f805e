import type { Engine, PublishOptions } from '../shared/engine/engine';
import { isEventTooLarge } from '../shared/errors';
import type { Logger } from '../shared/logger';
import type { CommandEnvelope } from '../shared/types';

export interface CallEvent {
  topic: string;
  event: string;
  data: object;
  options?: PublishOptions;
  /** The reply (or error) that ends the call, as opposed to a notification before it. */
  final: boolean;
}

/**
 * Publishes one event of a command, for both APIs. What EVENT_MAX_BYTES refuses: a
 * notification (progress, log) is skipped with a warning, the reply still follows; a final
 * event is replaced by what `replaceTooLarge` publishes (an error saying so).
 */
export async function publishCallEvent(
  engine: Pick<Engine, 'publish'>,
  logger: Logger,
  command: CommandEnvelope,
  { topic, event, data, options, final }: CallEvent,
  replaceTooLarge: (detail: string) => Promise<void>,
): Promise<void> {
  try {
    await engine.publish(topic, event, JSON.stringify(data), options);
  } catch (err) {
    if (!isEventTooLarge(err)) throw err;
    if (final) return replaceTooLarge(err.message);
    logger.warn('notification over EVENT_MAX_BYTES dropped', {
      requestId: command.requestId,
      event,
      error: err.message,
    });
  }
}
