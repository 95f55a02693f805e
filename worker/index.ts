/** The worker's public API, for bin/ and the gateway's Streamable HTTP endpoint. */
export { createWorker, type Worker, type WorkerDeps } from './worker';
export { createWorkerHttpApp, type WorkerHttpDeps } from './httpServer';
export {
  Dispatcher,
  WORKER_ERROR_CODES,
  publishCommandError,
  type DispatchOutcome,
} from './dispatcher';
export {
  BACKLOG_SERVER_INFO,
  INFRASTRUCTURE_FAILURE_META,
  createBacklogServer,
} from './mcp/backlogServer';
export { InProcessTransport, REQUEST_CANCELLED } from './mcp/inProcessTransport';
export { authInfoForCommand, idempotencyKeyOf } from './mcp/requestContext';
export { BacklogStore } from './backlog/store';
export * from './backlog/model';
