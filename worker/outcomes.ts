import { RPC_ERRORS } from '../shared/protocol';

/** What became of a command, for metrics. */
export type DispatchOutcome = 'ok' | 'error' | 'cancelled' | 'timeout' | 'notification';

/** The outcome of a command whose request got this JSON-RPC error. */
export function errorOutcome(code: number): DispatchOutcome {
  if (code === RPC_ERRORS.requestCancelled) return 'cancelled';
  if (code === RPC_ERRORS.timedOut) return 'timeout';
  return 'error';
}
