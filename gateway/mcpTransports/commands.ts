import { randomUUID } from 'node:crypto';
import type { AdmissionLimits, Engine } from '../../shared/engine/engine';
import { topics } from '../../shared/protocol';
import { errors } from '../../shared/errors';
import {
  MODERN_SESSION,
  mcpNames,
  type McpCancel,
  type McpClientResponse,
} from '../../shared/mcpTransports';
import { CONTROL_EVENTS } from '../../shared/protocol';
import type { Metrics } from '../../shared/metrics';
import { exceedsBytes, truncate } from '../../shared/text';
import type { CommandEnvelope, McpRoute, TokenClaims } from '../../shared/types';
import { admissionLimits, enqueueAdmitted } from '../admission';
import type { McpRouteContext } from './mcpContext';
import { toClientMessage, type IncomingMessage, type IncomingRequest } from './protocol';

/**
 * Queues a POST's JSON-RPC requests for the workers, each replying on the given stream: all of
 * them or, past an admission limit, none (GatewayError queue_full 503 / inflight_limit 429).
 * `replyTopic`: where this pod hears the stream (McpReplyRouter); none for a stream the pod
 * subscribes to itself. `modern`: what a stateless 2026-07-28 request's route adds.
 */
export async function enqueueRequests(
  engine: Engine,
  metrics: Metrics,
  limits: AdmissionLimits,
  claims: TokenClaims,
  sessionId: string,
  streamId: string,
  requests: IncomingRequest[],
  replyTopic?: string,
  modern?: Pick<McpRoute, 'era' | 'paramHeaders'>,
): Promise<void> {
  const enqueuedAt = Date.now();
  const commands = requests.map((request): CommandEnvelope => ({
    requestId: randomUUID(),
    sub: claims.sub,
    tokenType: claims.type,
    ...(claims.tools ? { tools: claims.tools } : {}),
    message: toClientMessage(request),
    enqueuedAt,
    mcp: {
      sessionId,
      streamId,
      ...(replyTopic ? { replyTopic } : {}),
      ...modern,
    },
  }));
  await enqueueAdmitted(engine, metrics, limits, commands);
}

/**
 * Queues one MCP 2026-07-28 request (no session: MODERN_SESSION), replying on the given stream
 * through this pod's reply router.
 */
export function enqueueModernRequest(
  ctx: Pick<McpRouteContext, 'engine' | 'metrics' | 'config' | 'replies'>,
  claims: TokenClaims,
  streamId: string,
  request: Pick<IncomingRequest, 'id' | 'method' | 'params'>,
  paramHeaders?: Record<string, string>,
): Promise<void> {
  return enqueueRequests(
    ctx.engine,
    ctx.metrics,
    admissionLimits(ctx.config),
    claims,
    MODERN_SESSION,
    streamId,
    [{ jsonrpc: '2.0', id: request.id, method: request.method, params: request.params }],
    ctx.replies.topic,
    paramHeaders ? { era: 'modern', paramHeaders } : { era: 'modern' },
  );
}

/** Characters of a cancel's reason passed on (it is echoed in the cancelled call's error). */
const CANCEL_REASON_MAX_CHARS = 200;

/**
 * The client's notifications and responses, for every worker to hear (the one running the call
 * concerned acts on it): notifications/cancelled aborts a call; a response answers a request the
 * server sent (sampling, elicitation). Other notifications (initialized, roots changes) need
 * nothing from a worker, whose session servers replay initialization themselves: dropped.
 *
 * Only what a worker waits for reaches the workers' shared topic: a response must answer a
 * server request still pending for this session (recorded by the worker that sent it, taken
 * here, so each is answered once) and fit in `maxBytes`; else the POST gets an error (400 or
 * 413) and nothing of it is published. Sizes are checked for the whole batch first.
 */
export async function handleClientMessages(
  engine: Engine,
  sessionId: string,
  messages: IncomingMessage[],
  maxBytes: number,
): Promise<void> {
  const responses = new Map<IncomingMessage, string>();
  for (const message of messages) {
    if (message.method !== undefined) continue;
    const response: McpClientResponse = {
      sessionId,
      message: message as McpClientResponse['message'],
    };
    const data = JSON.stringify(response);
    const bytes = exceedsBytes(data, maxBytes);
    if (bytes !== undefined) throw errors.eventTooLarge(bytes, maxBytes);
    responses.set(message, data);
  }
  for (const message of messages) {
    const response = responses.get(message);
    if (response !== undefined) {
      await takePendingServerRequest(engine, sessionId, message.id);
      await engine.publish(topics.workers, CONTROL_EVENTS.clientResponse, response);
      continue;
    }
    if (message.method !== 'notifications/cancelled' || message.id !== undefined) continue;
    const requestId = message.params?.requestId;
    if (typeof requestId !== 'string' && typeof requestId !== 'number') continue;
    const reason = message.params?.reason;
    const cancel: McpCancel = {
      sessionId,
      requestId,
      ...(typeof reason === 'string' ? { reason: truncate(reason, CANCEL_REASON_MAX_CHARS) } : {}),
    };
    await engine.publish(topics.workers, CONTROL_EVENTS.mcpCancel, JSON.stringify(cancel));
  }
}

/** Lets a response through once: 400 unless the session has a server request of that id pending. */
async function takePendingServerRequest(
  engine: Engine,
  sessionId: string,
  id: IncomingMessage['id'],
): Promise<void> {
  const pending =
    typeof id === 'string' && (await engine.kv.delete(mcpNames.serverRequestKey(sessionId, id)));
  if (pending) return;
  throw errors.invalidRequest(
    `Unsolicited response: no server request with id ${truncate(JSON.stringify(id ?? null))} ` +
      'is pending for this session (responses answer only what the server asked, once)',
  );
}
