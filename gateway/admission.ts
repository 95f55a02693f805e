import type { Config } from '../shared/config';
import type { AdmissionLimits, Engine } from '../shared/engine/engine';
import { EngineError } from '../shared/errors';
import type { Metrics } from '../shared/metrics';
import type { CommandEnvelope } from '../shared/types';

/** Refusal codes of Engine.enqueueCommands, as mcpgw_commands_refused_total reasons. */
const REFUSALS = new Set(['queue_full', 'inflight_limit']);

/**
 * What every gateway admits into the shared queue. The in-flight lease only heals a place that
 * was never released (a lost ack): it outlasts the longest a command can legitimately stay in
 * flight, every delivery running to the tool timeout and then waiting to be reclaimed.
 */
export function admissionLimits(config: Config): AdmissionLimits {
  return {
    maxQueued: config.commandQueueMax,
    maxInFlightPerToken: config.maxInflightPerToken,
    inFlightLeaseMs: (config.toolTimeoutMs + config.claimIdleMs) * config.maxDeliveries,
  };
}

/**
 * Queues one request's commands (one token's), all or none, within the admission limits:
 * a refusal (EngineError queue_full, answered 503 / inflight_limit, answered 429, with
 * Retry-After) is counted and thrown before anything is queued.
 */
export async function enqueueAdmitted(
  engine: Engine,
  metrics: Metrics,
  limits: AdmissionLimits,
  commands: CommandEnvelope[],
): Promise<void> {
  try {
    await engine.enqueueCommands(commands, limits);
  } catch (error) {
    if (error instanceof EngineError && REFUSALS.has(error.code)) {
      metrics.commandsRefused.inc({ reason: error.code });
    }
    throw error;
  }
  metrics.commandsEnqueued.inc(commands.length);
}
