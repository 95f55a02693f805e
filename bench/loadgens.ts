/** The load generator processes that hold the broadcast scenario's SSE streams. */
import { waitFor } from '../devSupport/waitFor';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { forkScript, sleep, type Proc } from './procs';
import { type LoadgenProgress, type LoadgenReport, type ToLoadgen } from './protocol';

import { DIST_BENCH, now } from './common';

/** A forked load generator: its last progress and report as it sent them. */
export interface LoadgenOf<Progress, Report> {
  proc: Proc;
  progress: Progress;
  report?: Report;
  error?: string;
}

export type Loadgen = LoadgenOf<LoadgenProgress, LoadgenReport>;

/** Forks `count` processes of a load generator script (in dist/bench/), tracking their messages. */
export function forkLoadgens<Progress, Report>(
  count: number,
  script: string,
  name: string,
  progress: Progress,
): LoadgenOf<Progress, Report>[] {
  return Array.from({ length: count }, (_, i) => {
    const proc = forkScript(`${name}-${i + 1}`, path.join(DIST_BENCH, script));
    const lg: LoadgenOf<Progress, Report> = { proc, progress };
    proc.child.on(
      'message',
      (message: { type: 'progress' | 'report' | 'error'; message?: string }) => {
        if (message.type === 'progress') lg.progress = message as Progress;
        else if (message.type === 'report') lg.report = message as Report;
        else lg.error = message.message;
      },
    );
    return lg;
  });
}

export function startLoadgens(count: number): Loadgen[] {
  return forkLoadgens<LoadgenProgress, LoadgenReport>(count, 'loadgen.js', 'loadgen', {
    type: 'progress',
    opened: 0,
    failed: 0,
    warm: 0,
    deliveries: 0,
    epoch: 0,
  });
}

export function tell<Message = ToLoadgen>(lg: LoadgenOf<unknown, unknown>, message: Message): void {
  lg.proc.child.send(message as object);
}

/** The sum of a progress counter over every load generator; throws if one failed or exited. */
export function total<Progress extends { type: 'progress' }>(
  loadgens: LoadgenOf<Progress, unknown>[],
  key: { [K in keyof Progress]: Progress[K] extends number ? K : never }[keyof Progress],
): number {
  let sum = 0;
  for (const lg of loadgens) {
    if (lg.error) throw new Error(`${lg.proc.name}: ${lg.error}`);
    if (!lg.proc.isRunning()) throw new Error(`${lg.proc.name} exited:\n${lg.proc.output()}`);
    sum += lg.progress[key] as number;
  }
  return sum;
}

/** What every broadcast carries: `type` and `seq` first (the load generators match that prefix). */
export interface BenchMessage {
  type: string;
  seq: number;
  sentAt: number;
  result: { message: string; level: string };
}

/** Publishes one broadcast on a server under test; resolves to a failure text, or undefined. */
export type Publish = (message: BenchMessage) => Promise<string | undefined>;

let epochs = 0;

/** Starts a new measurement in every load generator; resolves once all reset their counters. */
export async function expectBroadcasts(loadgens: Loadgen[], broadcasts: number): Promise<void> {
  const epoch = ++epochs;
  for (const lg of loadgens) tell(lg, { cmd: 'expect', broadcasts, epoch });
  // total() throws if a load generator died meanwhile.
  await waitFor(
    () => total(loadgens, 'opened') >= 0 && loadgens.every((lg) => lg.progress.epoch === epoch),
    10_000,
    'load generators to reset their counters',
  );
}

/**
 * Publishes `count` broadcasts at `perSecond`, each with its send time in the message, and
 * resolves once every POST answered: the failures, and when the last one was sent. At most
 * `inFlight` wait for their answer at once; with 1 they are published in seq order.
 */
export async function broadcast(
  publish: Publish,
  event: string,
  count: number,
  perSecond: number,
  inFlight = 8,
  /** Filler in each message's text, to set the event's size (bench/eventFiller.ts). */
  filler = 'Server maintenance in 5 minutes',
): Promise<{ failures: string[]; lastSent: number }> {
  const interval = 1000 / perSecond;
  const start = performance.now();
  const posts: Array<Promise<string | undefined>> = [];
  for (let seq = 0; seq < count; seq++) {
    const due = start + seq * interval - performance.now();
    if (due > 0) await sleep(due);
    const message = {
      type: event,
      seq,
      sentAt: now(),
      result: { message: filler, level: 'warning' },
    };
    const post = publish(message).catch((err: unknown) => String(err));
    posts.push(post);
    if (posts.length >= inFlight) await posts[posts.length - inFlight];
  }
  const lastSent = now();
  const failures = (await Promise.all(posts)).filter((f): f is string => f !== undefined);
  return { failures, lastSent };
}

export async function requestReports(loadgens: Loadgen[]): Promise<LoadgenReport[]> {
  for (const lg of loadgens) {
    lg.report = undefined;
    tell(lg, { cmd: 'report' });
  }
  await waitFor(() => loadgens.every((lg) => lg.report), 10_000, 'load generator reports');
  return loadgens.map((lg) => lg.report!);
}
