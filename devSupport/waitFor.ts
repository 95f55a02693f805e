/**
 * Polls until `predicate` holds, so tests wait on conditions rather than guessed delays that
 * are too short on a loaded machine and too long everywhere else.
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  description = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= deadline) {
      throw new Error(`waitFor: ${description} not met within ${timeoutMs} ms`);
    }
    await sleep(10);
  }
}

/** For checks that something does NOT happen, where no condition can be awaited. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
