import { randomUUID } from 'node:crypto';
import type { AdmissionLimits, Engine } from '../../shared/engine/engine';
import { topics } from '../../shared/engine/topics';
import { WORKER_EVENTS, type McpCancel, type McpClientResponse } from '../../shared/mcp';
import type { Metrics } from '../../shared/metrics';
import type { CommandEnvelope, TokenClaims } from '../../shared/types';
import { enqueueAdmitted } from '../admission';
import { toClientMessage, type IncomingMessage, type IncomingRequest } from './protocol';

/**
 * Queues a POST's JSON-RPC requests for the workers, each replying on the given stream: all of
 * them or, past an admission limit, none (GatewayError queue_full 503 / inflight_limit 429).
 */
export async function enqueueRequests(
  engine: Engine,
  metrics: Metrics,
  limits: AdmissionLimits,
  claims: TokenClaims,
  sessionId: string,
  streamId: string,
  requests: IncomingRequest[],
): Promise<void> {
  const enqueuedAt = Date.now();
  const commands = requests.map((request): CommandEnvelope => ({
    requestId: randomUUID(),
    connectionId: sessionId,
    tokenId: claims.sub,
    tokenType: claims.type,
    ...(claims.tools ? { tools: claims.tools } : {}),
    message: toClientMessage(request),
    enqueuedAt,
    mcp: { sessionId, streamId },
  }));
  await enqueueAdmitted(engine, metrics, limits, commands);
}

/**
 * The client's notifications and responses, for every worker to hear (the one running the call
 * concerned acts on it): notifications/cancelled aborts a call; a response answers a request the
 * server sent (sampling, elicitation). Other notifications (initialized, roots changes) need
 * nothing from a worker, whose session servers replay initialization themselves: dropped.
 */
export async function handleClientMessages(
  engine: Engine,
  sessionId: string,
  messages: IncomingMessage[],
): Promise<void> {
  for (const message of messages) {
    if (message.method === undefined && message.id !== undefined && message.id !== null) {
      const response: McpClientResponse = {
        sessionId,
        message: message as McpClientResponse['message'],
      };
      await engine.publish(topics.workers, WORKER_EVENTS.clientResponse, JSON.stringify(response));
      continue;
    }
    if (message.method !== 'notifications/cancelled' || message.id !== undefined) continue;
    const requestId = message.params?.requestId;
    if (typeof requestId !== 'string' && typeof requestId !== 'number') continue;
    const reason = message.params?.reason;
    const cancel: McpCancel = {
      sessionId,
      requestId,
      ...(typeof reason === 'string' ? { reason } : {}),
    };
    await engine.publish(topics.workers, WORKER_EVENTS.cancel, JSON.stringify(cancel));
  }
}
