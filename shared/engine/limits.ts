// Checks of the engines' options and arguments, shared by both implementations.
import { validateMaxPerToken } from './admission';
import type { ConsumeOptions } from './engine';

/** The byte bounds both engines take (see Config.historyMaxBytes and eventMaxBytes). */
export function validateByteLimits(historyMaxBytes: number, eventMaxBytes: number): void {
  if (!Number.isInteger(historyMaxBytes) || historyMaxBytes < 1) {
    throw new RangeError(`historyMaxBytes must be a positive integer, got ${historyMaxBytes}`);
  }
  if (!Number.isInteger(eventMaxBytes) || eventMaxBytes < 1 || eventMaxBytes > historyMaxBytes) {
    throw new RangeError(
      `eventMaxBytes must be a positive integer at most historyMaxBytes, got ${eventMaxBytes}`,
    );
  }
}

export function assertPositiveTtl(ttlMs: number): void {
  if (!(ttlMs >= 1)) throw new RangeError(`ttlMs must be at least 1, got ${ttlMs}`);
}

/** The history bounds both engines take (HISTORY_MAXLEN, HISTORY_TTL_S). */
export function validateHistoryOptions(historyMaxLen: number, historyTtlS: number): void {
  if (!Number.isInteger(historyMaxLen) || historyMaxLen < 0) {
    throw new RangeError(`historyMaxLen must be a non-negative integer, got ${historyMaxLen}`);
  }
  if (!(historyTtlS > 0)) {
    throw new RangeError(`historyTtlS must be positive, got ${historyTtlS}`);
  }
}

/** The options of Engine.consumeCommands, checked alike by both engines. */
export function validateConsumeOptions(options: ConsumeOptions): void {
  const { concurrency, claimIdleMs, maxDeliveries } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  if (!(claimIdleMs > 0)) throw new RangeError(`claimIdleMs must be positive, got ${claimIdleMs}`);
  if (!Number.isInteger(maxDeliveries) || maxDeliveries < 1) {
    throw new RangeError(`maxDeliveries must be a positive integer, got ${maxDeliveries}`);
  }
  validateMaxPerToken(options.maxPerToken);
}
