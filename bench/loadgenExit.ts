/** How a load generator process leaves (bench/loadgen.ts, bench/stormLoadgen.ts). */
import type http from 'node:http';

/**
 * Stops the progress reports, drops every stream's request, and exits once the IPC channel had
 * a moment to flush the last messages.
 */
export function closeStreamsAndExit(
  streams: Iterable<{ req?: http.ClientRequest }>,
  progressTimer: NodeJS.Timeout,
): void {
  clearInterval(progressTimer);
  for (const s of streams) s.req?.destroy();
  setTimeout(() => process.exit(0), 50);
}
