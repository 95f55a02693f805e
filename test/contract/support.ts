// What every part of the engine contract suite shares: its settings and small helpers.
import { randomUUID } from 'node:crypto';
import { EngineError } from '../../shared/errors';
import type {
  ConnectionRecord,
  ConsumeOptions,
  Engine,
  EngineEvent,
  EventListener,
} from '../../shared/engine/engine';
import type { CommandEnvelope, TokenType } from '../../shared/types';

/** makeEngine must build its engine with these (the suite relies on the history cap). */
export const CONTRACT_HISTORY_MAX_LEN = 20;
export const CONTRACT_HISTORY_TTL_S = 300;
/** Bytes of event names and data kept per topic, and the largest event data accepted. */
export const CONTRACT_HISTORY_MAX_BYTES = 8192;
export const CONTRACT_EVENT_MAX_BYTES = 4096;

/** Short, so redelivery tests take a fraction of a second. */
export const CLAIM_IDLE_MS = 150;
/** For tests where no redelivery may happen, even on a slow machine. */
export const NO_RECLAIM_MS = 30_000;

/** The engine of the running test (started before it, closed after it). */
export type CurrentEngine = () => Engine;

export function unique(label: string): string {
  return `${label}-${randomUUID()}`;
}

export function makeCommand(sub = 'alice'): CommandEnvelope {
  return {
    requestId: unique('req'),
    connectionId: unique('conn'),
    sub,
    tokenType: 'team',
    message: { method: 'tools/call', params: { name: 'list_projects', arguments: {} }, id: 1 },
    enqueuedAt: Date.now(),
  };
}

export function consumeOptions(overrides: Partial<ConsumeOptions> = {}): ConsumeOptions {
  return {
    consumerId: unique('consumer'),
    concurrency: 4,
    claimIdleMs: NO_RECLAIM_MS,
    maxDeliveries: 3,
    onDeadLetter: async () => undefined,
    ...overrides,
  };
}

export function connection(
  tokenType: TokenType,
  connectedAt: number,
  overrides: Partial<ConnectionRecord> = {},
): ConnectionRecord {
  return {
    connectionId: unique('conn'),
    sub: unique('token'),
    tokenType,
    podId: 'pod-1',
    connectedAt,
    transport: 'seed',
    resumable: true,
    ...overrides,
  };
}

/** The EngineError a refused enqueue rejected with (fails the test if it was admitted). */
export async function refusal(admission: Promise<void>): Promise<EngineError> {
  try {
    await admission;
  } catch (error) {
    expect(error).toBeInstanceOf(EngineError);
    return error as EngineError;
  }
  throw new Error('expected the command to be refused, but it was queued');
}

export async function backlogIs(
  engine: Engine,
  waiting: number,
  pending: number,
  deadLettered: number,
): Promise<boolean> {
  const backlog = await engine.commandBacklog();
  return (
    backlog.waiting === waiting &&
    backlog.pending === pending &&
    backlog.deadLettered === deadLettered
  );
}

export function collector(): { events: EngineEvent[]; listener: EventListener } {
  const events: EngineEvent[] = [];
  return { events, listener: (event) => events.push({ ...event }) };
}

/** Gates not yet opened, opened after each test whatever happened. */
export const unopenedGates = new Set<() => void>();

/** A promise a test opens when it chooses, to hold a handler in flight. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  const open = () => {
    unopenedGates.delete(open);
    resolve();
  };
  unopenedGates.add(open);
  return { promise, open };
}
