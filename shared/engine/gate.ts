import { engineErrors } from '../errors';

/**
 * Whether an engine still takes work: the engine closes it, its ports refuse work through it.
 */
export class EngineGate {
  /** close() has begun: no consumer may start (close() would never stop it). */
  closing = false;
  /** Consumers have stopped: nothing new may be published, queued or subscribed. */
  closed = false;

  assertOpen(): void {
    if (this.closed) throw engineErrors.unavailable('Engine is closed');
  }

  assertNotClosing(): void {
    if (this.closing) throw engineErrors.unavailable('Engine is closed');
  }
}
