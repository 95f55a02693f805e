// Checks of the engines' options and arguments, shared by both implementations.

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
