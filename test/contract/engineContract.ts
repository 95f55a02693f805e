import { randomUUID } from 'node:crypto';
import { EngineError } from '../../shared/errors';
import type {
  AdmissionLimits,
  CommandHandler,
  ConnectionRecord,
  ConsumeOptions,
  Engine,
  EngineEvent,
  EventListener,
  QueuedCommand,
} from '../../shared/engine/engine';
import { ZERO_EVENT_ID, compareEventIds, isEventId } from '../../shared/engine/eventId';
import type { CommandEnvelope, TokenType } from '../../shared/types';
import { sleep, waitFor } from '../../devSupport/waitFor';

/**
 * The engine contract, run against every Engine implementation (memory and Redis).
 *
 * Engine-agnostic on purpose: real time (no fake timers), short intervals, and waits on
 * conditions, since the Redis engine delivers asynchronously over separate connections.
 * Fixed sleeps appear only where a test checks that something does NOT happen.
 */

/** makeEngine must build its engine with these (the suite relies on the history cap). */
export const CONTRACT_HISTORY_MAX_LEN = 20;
export const CONTRACT_HISTORY_TTL_S = 300;
/** Bytes of event names and data kept per topic, and the largest event data accepted. */
export const CONTRACT_HISTORY_MAX_BYTES = 8192;
export const CONTRACT_EVENT_MAX_BYTES = 4096;

/** Short, so redelivery tests take a fraction of a second. */
const CLAIM_IDLE_MS = 150;
/** For tests where no redelivery may happen, even on a slow machine. */
const NO_RECLAIM_MS = 30_000;

/**
 * Declares the suite. `makeEngine` returns a new engine, not yet started, built with
 * CONTRACT_HISTORY_MAX_LEN, CONTRACT_HISTORY_TTL_S, CONTRACT_HISTORY_MAX_BYTES and
 * CONTRACT_EVENT_MAX_BYTES, isolated from every other engine it
 * returns (for Redis: a unique key prefix). The suite starts it, closes it after each test,
 * then calls `cleanup` (e.g. to delete the test's keys).
 */
export function describeEngineContract(
  name: string,
  makeEngine: () => Promise<Engine>,
  cleanup?: (engine: Engine) => Promise<void>,
): void {
  describe(`Engine contract: ${name}`, () => {
    let engine: Engine;

    beforeEach(async () => {
      engine = await makeEngine();
      await engine.start();
    });

    afterEach(async () => {
      // A failed test may leave a handler held: let it go, or close() would wait for it.
      for (const open of unopenedGates) open();
      unopenedGates.clear();
      await engine.close();
      if (cleanup) await cleanup(engine);
    });

    describe('lifecycle', () => {
      it('is ready once started and names its kind', () => {
        expect(engine.isReady()).toBe(true);
        expect(['memory', 'redis']).toContain(engine.kind);
      });

      it('close is idempotent, also when called concurrently, and leaves it not ready', async () => {
        await Promise.all([engine.close(), engine.close()]);
        await engine.close();
        expect(engine.isReady()).toBe(false);
      });

      it('close waits for in-flight handlers, which may still publish their results', async () => {
        const topic = unique('close-result');
        const release = gate();
        let started = false;
        let published = false;
        engine.consumeCommands(async () => {
          started = true;
          await release.promise;
          await engine.publish(topic, 'tool-result', '{}');
          published = true;
        }, consumeOptions());
        await engine.enqueueCommand(makeCommand());
        await waitFor(() => started, 5000, 'handler started');

        let closed = false;
        const closing = engine.close().then(() => {
          closed = true;
        });
        await sleep(50);
        expect(closed).toBe(false);
        release.open();
        await closing;
        expect(published).toBe(true);
        expect(engine.isReady()).toBe(false);
      });
    });

    describe('publish and history', () => {
      it('returns valid, strictly increasing ids, and lastEventId follows the newest', async () => {
        const topic = unique('ids');
        const ids: string[] = [];
        for (let i = 0; i < 30; i += 1) {
          ids.push(await engine.publish(topic, 'mcp-notification', JSON.stringify({ i })));
          expect(await engine.lastEventId(topic)).toBe(ids[i]);
        }
        for (const id of ids) expect(isEventId(id)).toBe(true);
        for (let i = 1; i < ids.length; i += 1) {
          expect(compareEventIds(ids[i - 1], ids[i])).toBeLessThan(0);
        }
      });

      it('has ZERO_EVENT_ID as lastEventId of a topic never published to', async () => {
        expect(await engine.lastEventId(unique('never'))).toBe(ZERO_EVENT_ID);
      });

      it('returns events oldest first, with topic, id, event name and data untouched', async () => {
        const topic = unique('history');
        const published = [
          { event: 'mcp-response', data: JSON.stringify({ text: 'héllo wörld 🚀 "q" \\n', n: 1 }) },
          { event: 'tool-result', data: 'plain text, not JSON\nsecond line' },
          { event: 'mcp-error', data: '' },
        ];
        const ids: string[] = [];
        for (const e of published) ids.push(await engine.publish(topic, e.event, e.data));

        const page = await engine.readHistory(topic, ZERO_EVENT_ID, 100);
        expect(page.truncated).toBe(false);
        expect(page.events).toEqual(published.map((e, i) => ({ topic, id: ids[i], ...e })));
      });

      it('pages through history with afterId and limit', async () => {
        const topic = unique('paging');
        const ids: string[] = [];
        for (let i = 0; i < 10; i += 1) ids.push(await engine.publish(topic, 'e', String(i)));

        const seen: string[] = [];
        let afterId = ZERO_EVENT_ID;
        for (;;) {
          const page = await engine.readHistory(topic, afterId, 3);
          expect(page.truncated).toBe(false);
          expect(page.events.length).toBeLessThanOrEqual(3);
          if (page.events.length === 0) break;
          seen.push(...page.events.map((e) => e.id));
          afterId = page.events[page.events.length - 1].id;
        }
        expect(seen).toEqual(ids);

        const middle = await engine.readHistory(topic, ids[4], 2);
        expect(middle.events.map((e) => e.data)).toEqual(['5', '6']);
        const end = await engine.readHistory(topic, ids[9], 10);
        expect(end).toEqual({ events: [], truncated: false });
      });

      it('keeps topics apart', async () => {
        const a = unique('apart-a');
        const b = unique('apart-b');
        await engine.publish(a, 'e', 'a1');
        await engine.publish(b, 'e', 'b1');
        await engine.publish(a, 'e', 'a2');
        const pageA = await engine.readHistory(a, ZERO_EVENT_ID, 10);
        const pageB = await engine.readHistory(b, ZERO_EVENT_ID, 10);
        expect(pageA.events.map((e) => e.data)).toEqual(['a1', 'a2']);
        expect(pageB.events.map((e) => e.data)).toEqual(['b1']);
        expect(pageA.events.every((e) => e.topic === a)).toBe(true);
      });

      it('keeps the newest historyMaxLen events and reports what was dropped as truncated', async () => {
        const topic = unique('capped');
        const dropped = 5;
        const ids: string[] = [];
        for (let i = 0; i < CONTRACT_HISTORY_MAX_LEN + dropped; i += 1) {
          ids.push(await engine.publish(topic, 'e', String(i)));
        }
        const kept = ids.slice(dropped);

        const all = await engine.readHistory(topic, ZERO_EVENT_ID, 1000);
        expect(all.truncated).toBe(true);
        expect(all.events.map((e) => e.id)).toEqual(kept);

        // Had seen an event before the newest dropped one: missed some.
        const missedSome = await engine.readHistory(topic, ids[dropped - 2], 1000);
        expect(missedSome.truncated).toBe(true);
        expect(missedSome.events.map((e) => e.id)).toEqual(kept);

        // Had seen the newest dropped event: missed nothing.
        const missedNone = await engine.readHistory(topic, ids[dropped - 1], 1000);
        expect(missedNone).toEqual({ events: all.events, truncated: false });

        const recent = await engine.readHistory(topic, ids[10], 3);
        expect(recent.truncated).toBe(false);
        expect(recent.events.map((e) => e.id)).toEqual(ids.slice(11, 14));
        expect(await engine.lastEventId(topic)).toBe(ids[ids.length - 1]);
      });

      it('reads a topic without history as empty, truncated only for a reader who saw some', async () => {
        const topic = unique('empty');
        expect(await engine.readHistory(topic, ZERO_EVENT_ID, 10)).toEqual({
          events: [],
          truncated: false,
        });
        expect(await engine.readHistory(topic, '1700000000000-0', 10)).toEqual({
          events: [],
          truncated: true,
        });
      });

      it('gives concurrent publishes unique ids and keeps history in id order', async () => {
        const topic = unique('concurrent');
        const ids = await Promise.all(
          Array.from({ length: 20 }, (_, i) => engine.publish(topic, 'e', String(i))),
        );
        expect(new Set(ids).size).toBe(20);
        const page = await engine.readHistory(topic, ZERO_EVENT_ID, 100);
        const historyIds = page.events.map((e) => e.id);
        expect(historyIds).toEqual([...ids].sort(compareEventIds));
      });
    });

    describe('subscribe', () => {
      it('delivers events published after subscribing, in order, with the published ids', async () => {
        const topic = unique('live');
        await engine.publish(topic, 'e', 'before');
        const received = collector();
        await engine.subscribe([topic], received.listener);

        const ids: string[] = [];
        for (let i = 0; i < 20; i += 1)
          ids.push(await engine.publish(topic, 'tool-result', `${i}`));
        await waitFor(() => received.events.length >= 20, 5000, '20 events delivered');
        await sleep(20);

        expect(received.events).toEqual(
          ids.map((id, i) => ({ topic, id, event: 'tool-result', data: `${i}` })),
        );
      });

      it('delivers every subscribed topic and no other', async () => {
        const a = unique('sub-a');
        const b = unique('sub-b');
        const other = unique('sub-other');
        const received = collector();
        await engine.subscribe([a, b], received.listener);

        await engine.publish(a, 'e', 'a');
        await engine.publish(other, 'e', 'other');
        await engine.publish(b, 'e', 'b');
        await waitFor(() => received.events.length >= 2, 5000, 'events of both topics');
        await sleep(20);

        expect(received.events.map((e) => [e.topic, e.data])).toEqual([
          [a, 'a'],
          [b, 'b'],
        ]);
      });

      it('gives every listener of a topic every event; closing one leaves the others', async () => {
        const topic = unique('shared');
        const first = collector();
        const second = collector();
        const firstSubscription = await engine.subscribe([topic], first.listener);
        await engine.subscribe([topic], second.listener);

        await engine.publish(topic, 'e', 'one');
        await waitFor(
          () => first.events.length === 1 && second.events.length === 1,
          5000,
          'both listeners got the first event',
        );

        await firstSubscription.close();
        await firstSubscription.close(); // idempotent
        await engine.publish(topic, 'e', 'two');
        // Once the open subscription has the event, a closed one would have had it too.
        await waitFor(() => second.events.length === 2, 5000, 'second listener got event two');
        await sleep(20);

        expect(first.events.map((e) => e.data)).toEqual(['one']);
        expect(second.events.map((e) => e.data)).toEqual(['one', 'two']);
      });

      it('keeps the same listener function subscribed twice as two subscriptions', async () => {
        const topic = unique('twice');
        const received = collector();
        const one = await engine.subscribe([topic], received.listener);
        await engine.subscribe([topic], received.listener);

        await engine.publish(topic, 'e', 'x');
        await waitFor(() => received.events.length === 2, 5000, 'delivered to both');
        await one.close();
        await engine.publish(topic, 'e', 'y');
        await waitFor(() => received.events.length === 3, 5000, 'delivered to the open one');
        await sleep(20);
        expect(received.events.map((e) => e.data)).toEqual(['x', 'x', 'y']);
      });

      it('does not let a throwing listener break the publisher or other listeners', async () => {
        const topic = unique('throwing');
        await engine.subscribe([topic], () => {
          throw new Error('listener bug');
        });
        const healthy = collector();
        await engine.subscribe([topic], healthy.listener);

        expect(isEventId(await engine.publish(topic, 'e', '1'))).toBe(true);
        expect(isEventId(await engine.publish(topic, 'e', '2'))).toBe(true);
        await waitFor(() => healthy.events.length === 2, 5000, 'healthy listener got both');
      });
    });

    describe('commands', () => {
      it('delivers a command once with deliveries 1 and acks it when the handler resolves', async () => {
        const command = makeCommand();
        const received: QueuedCommand[] = [];
        engine.consumeCommands(async (queued) => {
          received.push(queued);
        }, consumeOptions());
        await engine.enqueueCommand(command);

        await waitFor(() => received.length === 1, 5000, 'command delivered');
        expect(received[0].command).toEqual(command);
        expect(received[0].deliveries).toBe(1);
        expect(typeof received[0].deliveryId).toBe('string');
        expect(received[0].deliveryId.length).toBeGreaterThan(0);
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'empty backlog');
      });

      it('delivers commands enqueued before the consumer started, in order', async () => {
        const commands = [makeCommand(), makeCommand(), makeCommand()];
        for (const command of commands) await engine.enqueueCommand(command);
        const received: string[] = [];
        engine.consumeCommands(
          async (queued) => {
            received.push(queued.command.requestId);
          },
          consumeOptions({ concurrency: 1 }),
        );

        await waitFor(() => received.length === 3, 5000, 'three commands');
        expect(received).toEqual(commands.map((c) => c.requestId));
      });

      it('shares commands among competing consumers, each command to exactly one', async () => {
        const commands = Array.from({ length: 30 }, () => makeCommand());
        for (const command of commands) await engine.enqueueCommand(command);
        const handledBy = new Map<string, string[]>();
        const handler =
          (consumerName: string): CommandHandler =>
          async (queued) => {
            await sleep(5);
            const consumers = handledBy.get(queued.command.requestId) ?? [];
            consumers.push(consumerName);
            handledBy.set(queued.command.requestId, consumers);
          };
        engine.consumeCommands(handler('a'), consumeOptions({ concurrency: 2 }));
        engine.consumeCommands(handler('b'), consumeOptions({ concurrency: 2 }));

        await waitFor(() => handledBy.size === 30, 10_000, 'all commands handled');
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'empty backlog');
        const consumersOfEach = [...handledBy.values()];
        expect(consumersOfEach.every((consumers) => consumers.length === 1)).toBe(true);
        const byA = consumersOfEach.filter(([consumer]) => consumer === 'a').length;
        expect(byA).toBeGreaterThan(0);
        expect(byA).toBeLessThan(30);
      });

      it('runs at most `concurrency` handlers at once', async () => {
        for (let i = 0; i < 10; i += 1) await engine.enqueueCommand(makeCommand());
        let active = 0;
        let maxActive = 0;
        let done = 0;
        engine.consumeCommands(
          async () => {
            active += 1;
            maxActive = Math.max(maxActive, active);
            await sleep(30); // simulated work
            active -= 1;
            done += 1;
          },
          consumeOptions({ concurrency: 3 }),
        );

        await waitFor(() => done === 10, 10_000, 'ten commands handled');
        expect(maxActive).toBe(3);
      });

      it('redelivers a rejected command after claimIdleMs, with deliveries 2', async () => {
        const command = makeCommand();
        const deliveries: { queued: QueuedCommand; at: number }[] = [];
        engine.consumeCommands(
          async (queued) => {
            deliveries.push({ queued, at: Date.now() });
            if (queued.deliveries === 1) throw new Error('transient failure');
          },
          consumeOptions({ claimIdleMs: CLAIM_IDLE_MS, maxDeliveries: 5 }),
        );
        await engine.enqueueCommand(command);

        await waitFor(() => deliveries.length === 2, 5000, 'redelivery');
        const [first, second] = deliveries;
        expect(second.queued.deliveries).toBe(2);
        expect(second.queued.deliveryId).toBe(first.queued.deliveryId);
        expect(second.queued.command).toEqual(command);
        // A little slack: the engine may measure idle time from a slightly earlier instant.
        expect(second.at - first.at).toBeGreaterThanOrEqual(CLAIM_IDLE_MS - 25);
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'acked on second delivery');
        await sleep(CLAIM_IDLE_MS * 2);
        expect(deliveries).toHaveLength(2);
      });

      it('lets another consumer reclaim what a stopped consumer left pending', async () => {
        const command = makeCommand();
        const byFirst: QueuedCommand[] = [];
        const first = engine.consumeCommands(
          async (queued) => {
            byFirst.push(queued);
            throw new Error('crashed mid-command');
          },
          consumeOptions({ claimIdleMs: CLAIM_IDLE_MS }),
        );
        await engine.enqueueCommand(command);
        await waitFor(() => byFirst.length === 1, 5000, 'first delivery');
        await first.stop();

        const bySecond: QueuedCommand[] = [];
        engine.consumeCommands(
          async (queued) => {
            bySecond.push(queued);
          },
          consumeOptions({ claimIdleMs: CLAIM_IDLE_MS }),
        );

        await waitFor(() => bySecond.length === 1, 5000, 'reclaimed by the second consumer');
        expect(bySecond[0].deliveryId).toBe(byFirst[0].deliveryId);
        expect(bySecond[0].deliveries).toBe(2);
        expect(bySecond[0].command).toEqual(command);
        expect(byFirst).toHaveLength(1);
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'empty backlog');
      });

      it('dead-letters a command after maxDeliveries tries and calls onDeadLetter once', async () => {
        const command = makeCommand();
        const maxDeliveries = 2;
        const tries: number[] = [];
        const deadLetters: QueuedCommand[] = [];
        engine.consumeCommands(
          async (queued) => {
            tries.push(queued.deliveries);
            throw new Error('always fails');
          },
          consumeOptions({
            claimIdleMs: CLAIM_IDLE_MS,
            maxDeliveries,
            onDeadLetter: async (queued) => {
              deadLetters.push(queued);
            },
          }),
        );
        await engine.enqueueCommand(command);

        await waitFor(() => deadLetters.length === 1, 10_000, 'dead letter');
        expect(tries).toEqual([1, 2]);
        expect(deadLetters[0].command).toEqual(command);
        // Engines may count the refused delivery or not; never fewer than the tries made.
        expect(deadLetters[0].deliveries).toBeGreaterThanOrEqual(maxDeliveries);
        // Engines may call onDeadLetter before or after moving the entry: wait for the move.
        await waitFor(() => backlogIs(engine, 0, 0, 1), 5000, 'moved to the dead letters');

        await sleep(CLAIM_IDLE_MS * 3);
        expect(tries).toHaveLength(maxDeliveries);
        expect(deadLetters).toHaveLength(1);
      });

      it('counts waiting, pending and dead-lettered commands', async () => {
        expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 0 });
        for (let i = 0; i < 3; i += 1) await engine.enqueueCommand(makeCommand());
        expect(await engine.commandBacklog()).toEqual({ waiting: 3, pending: 0, deadLettered: 0 });

        const release = gate();
        let started = 0;
        engine.consumeCommands(
          async () => {
            started += 1;
            await release.promise;
          },
          consumeOptions({ concurrency: 1 }),
        );
        await waitFor(() => started === 1, 5000, 'first command in hand');
        expect(await engine.commandBacklog()).toEqual({ waiting: 2, pending: 1, deadLettered: 0 });

        release.open();
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'all acked');
        expect(started).toBe(3);
      });

      it('stop() waits for in-flight handlers, acks them, and takes nothing new', async () => {
        const first = makeCommand();
        const release = gate();
        const handled: string[] = [];
        let finished = false;
        const consumer = engine.consumeCommands(
          async (queued) => {
            handled.push(queued.command.requestId);
            await release.promise;
            finished = true;
          },
          consumeOptions({ concurrency: 1 }),
        );
        await engine.enqueueCommand(first);
        await waitFor(() => handled.length === 1, 5000, 'command in hand');

        let stopped = false;
        const stopping = consumer.stop().then(() => {
          stopped = true;
        });
        await sleep(50);
        expect(stopped).toBe(false);
        release.open();
        await stopping;
        expect(finished).toBe(true);
        expect((await engine.commandBacklog()).pending).toBe(0);
        await consumer.stop(); // idempotent

        const second = makeCommand();
        await engine.enqueueCommand(second);
        const byOther: string[] = [];
        engine.consumeCommands(async (queued) => {
          byOther.push(queued.command.requestId);
        }, consumeOptions());
        await waitFor(() => byOther.length === 1, 5000, 'new consumer got the command');
        expect(byOther).toEqual([second.requestId]);
        expect(handled).toEqual([first.requestId]);
      });

      it('remembers processed request ids', async () => {
        const requestId = unique('req');
        expect(await engine.isProcessed(requestId)).toBe(false);
        await engine.markProcessed(requestId);
        await engine.markProcessed(requestId);
        expect(await engine.isProcessed(requestId)).toBe(true);
        expect(await engine.isProcessed(unique('req'))).toBe(false);
      });

      it('marks a request processed in the same step as publishing its final event', async () => {
        const topic = unique('topic');
        const [completed, other] = [unique('req'), unique('req')];
        const received: string[] = [];
        const sub = await engine.subscribe([topic], (e) => received.push(e.data));
        await engine.publish(topic, 'progress', '{"n":1}');
        expect(await engine.isProcessed(completed)).toBe(false);
        await engine.publish(topic, 'tool-result', '{"n":2}', { completesRequest: completed });
        expect(await engine.isProcessed(completed)).toBe(true);
        expect(await engine.isProcessed(other)).toBe(false);
        await waitFor(() => received.length === 2);
        expect(received).toEqual(['{"n":1}', '{"n":2}']);
        const page = await engine.readHistory(topic, ZERO_EVENT_ID, 10);
        expect(page.events.map((e) => e.event)).toEqual(['progress', 'tool-result']);
        await sub.close();
      });
    });

    describe('command admission and fair scheduling', () => {
      const limits = (overrides: Partial<AdmissionLimits> = {}): AdmissionLimits => ({
        maxQueued: 0,
        maxInFlightPerToken: 0,
        inFlightLeaseMs: 60_000,
        ...overrides,
      });

      it('refuses commands past maxQueued with queue_full, queueing none of them', async () => {
        for (let i = 0; i < 3; i += 1) {
          await engine.enqueueCommand(makeCommand(`t${i}`), limits({ maxQueued: 4 }));
        }
        const refused = await refusal(
          engine.enqueueCommands([makeCommand('t9'), makeCommand('t9')], limits({ maxQueued: 4 })),
        );
        expect(refused).toMatchObject({ code: 'queue_full' });
        expect((await engine.commandBacklog()).waiting).toBe(3);
        await engine.enqueueCommand(makeCommand('t9'), limits({ maxQueued: 4 }));
        expect((await engine.commandBacklog()).waiting).toBe(4);

        // Handled (acked) commands leave the queue and make room again.
        const handled: string[] = [];
        engine.consumeCommands(async (queued) => {
          handled.push(queued.command.requestId);
        }, consumeOptions());
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'queue drained');
        await engine.enqueueCommands(
          [makeCommand('t8'), makeCommand('t8'), makeCommand('t8'), makeCommand('t8')],
          limits({ maxQueued: 4 }),
        );
        await waitFor(() => handled.length === 8, 5000, 'eight handled');
      });

      it("counts a token's commands in flight until acked, refusing more with inflight_limit", async () => {
        const cap = limits({ maxInFlightPerToken: 3 });
        const release = gate();
        const started: string[] = [];
        engine.consumeCommands(
          async (queued) => {
            started.push(queued.command.requestId);
            await release.promise;
          },
          consumeOptions({ concurrency: 1 }),
        );
        // Running or waiting, both count.
        for (let i = 0; i < 3; i += 1) await engine.enqueueCommand(makeCommand('greedy'), cap);
        await waitFor(() => started.length === 1, 5000, 'one running');
        const refused = await refusal(engine.enqueueCommand(makeCommand('greedy'), cap));
        expect(refused).toMatchObject({ code: 'inflight_limit' });
        // A batch is admitted whole or not at all; another token is not affected.
        expect(
          await refusal(
            engine.enqueueCommands(
              [makeCommand('other'), makeCommand('other')],
              limits({
                maxInFlightPerToken: 1,
              }),
            ),
          ),
        ).toMatchObject({ code: 'inflight_limit' });
        await engine.enqueueCommand(makeCommand('other'), cap);
        expect(await engine.commandBacklog()).toEqual({ waiting: 3, pending: 1, deadLettered: 0 });

        release.open();
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'all acked');
        // Acked: the places are free again.
        for (let i = 0; i < 3; i += 1) await engine.enqueueCommand(makeCommand('greedy'), cap);
        await waitFor(() => started.length === 7, 5000, 'the new ones ran');
      });

      it('releases the in-flight place of a dead-lettered command', async () => {
        const cap = limits({ maxInFlightPerToken: 1 });
        const deadLetters: QueuedCommand[] = [];
        engine.consumeCommands(
          async () => {
            throw new Error('always fails');
          },
          consumeOptions({
            claimIdleMs: CLAIM_IDLE_MS,
            maxDeliveries: 1,
            onDeadLetter: async (queued) => {
              deadLetters.push(queued);
            },
          }),
        );
        await engine.enqueueCommand(makeCommand('doomed'), cap);
        expect(await refusal(engine.enqueueCommand(makeCommand('doomed'), cap))).toMatchObject({
          code: 'inflight_limit',
        });
        await waitFor(() => backlogIs(engine, 0, 0, 1), 10_000, 'dead-lettered');
        await engine.enqueueCommand(makeCommand('doomed'), cap);
        await waitFor(() => deadLetters.length >= 1, 5000, 'onDeadLetter ran');
      });

      it('stops counting a place never released after inFlightLeaseMs', async () => {
        const cap = limits({ maxInFlightPerToken: 1, inFlightLeaseMs: 200 });
        await engine.enqueueCommand(makeCommand('leaky'), cap); // no consumer: never acked
        expect(await refusal(engine.enqueueCommand(makeCommand('leaky'), cap))).toMatchObject({
          code: 'inflight_limit',
        });
        await sleep(300);
        await engine.enqueueCommand(makeCommand('leaky'), cap);
        expect((await engine.commandBacklog()).waiting).toBe(2);
      });

      it('with maxPerToken, one token never holds every slot while another token waits', async () => {
        const release = gate();
        const running = new Map<string, number>();
        let maxGreedy = 0;
        const finished: string[] = [];
        engine.consumeCommands(
          async ({ command }) => {
            running.set(command.sub, (running.get(command.sub) ?? 0) + 1);
            maxGreedy = Math.max(maxGreedy, running.get('greedy') ?? 0);
            if (command.sub === 'greedy') await release.promise;
            running.set(command.sub, (running.get(command.sub) ?? 0) - 1);
            finished.push(command.sub);
          },
          consumeOptions({ concurrency: 4, maxPerToken: 3 }),
        );
        for (let i = 0; i < 12; i += 1) await engine.enqueueCommand(makeCommand('greedy'));
        await waitFor(() => running.get('greedy') === 3, 5000, 'greedy at its cap');
        // Queued behind nine greedy commands, yet it runs while the greedy ones are held.
        const polite = [makeCommand('polite'), makeCommand('polite')];
        for (const command of polite) await engine.enqueueCommand(command);
        await waitFor(() => finished.length === 2, 5000, 'polite commands done');
        expect(finished).toEqual(['polite', 'polite']);
        expect(running.get('greedy')).toBe(3);

        release.open();
        await waitFor(() => finished.length === 14, 10_000, 'everything done, nothing lost');
        expect(maxGreedy).toBe(3);
        await waitFor(() => backlogIs(engine, 0, 0, 0), 5000, 'all acked');
      });

      it('rejects a maxPerToken that is not a positive integer', () => {
        expect(() =>
          engine.consumeCommands(async () => undefined, consumeOptions({ maxPerToken: 0 })),
        ).toThrow(RangeError);
      });
    });

    describe('connection registry', () => {
      it('registers, gets and unregisters connections', async () => {
        const record = connection('team', 1_700_000_000_000);
        await engine.registerConnection(record);
        expect(await engine.getConnection(record.connectionId)).toEqual(record);
        expect(await engine.getConnection(unique('unknown'))).toBeUndefined();

        await engine.unregisterConnection(record.connectionId);
        await engine.unregisterConnection(record.connectionId); // unknown: no error
        expect(await engine.getConnection(record.connectionId)).toBeUndefined();
      });

      it('reports empty stats with every token type and transport present', async () => {
        expect(await engine.clusterStats()).toEqual({
          totalConnections: 0,
          connectionsByType: { master: 0, team: 0, readonly: 0 },
          connectionsByTransport: { seed: 0, 'streamable-http': 0, 'legacy-sse': 0 },
          resumableConnections: 0,
          oldestConnection: null,
          newestConnection: null,
        });
      });

      it('counts open streams by type and transport and reports the oldest and newest', async () => {
        const oldest = connection('team', Date.UTC(2024, 0, 1));
        const middle = connection('team', Date.UTC(2024, 5, 1), { transport: 'legacy-sse' });
        const newest = connection('readonly', Date.UTC(2024, 11, 31, 23, 59, 59, 999), {
          transport: 'streamable-http',
        });
        for (const record of [middle, newest, oldest]) {
          expect(await engine.registerConnection(record)).toBe(true);
        }

        expect(await engine.clusterStats()).toEqual({
          totalConnections: 3,
          connectionsByType: { master: 0, team: 2, readonly: 1 },
          connectionsByTransport: { seed: 1, 'streamable-http': 1, 'legacy-sse': 1 },
          resumableConnections: 0,
          oldestConnection: '2024-01-01T00:00:00.000Z',
          newestConnection: '2024-12-31T23:59:59.999Z',
        });

        await engine.unregisterConnection(newest.connectionId);
        expect(await engine.clusterStats()).toEqual({
          totalConnections: 2,
          connectionsByType: { master: 0, team: 2, readonly: 0 },
          connectionsByTransport: { seed: 1, 'streamable-http': 0, 'legacy-sse': 1 },
          resumableConnections: 0,
          oldestConnection: '2024-01-01T00:00:00.000Z',
          newestConnection: '2024-06-01T00:00:00.000Z',
        });
      });

      it('replaces a connection registered again (resumed on another pod)', async () => {
        const record = connection('master', Date.UTC(2024, 0, 1));
        await engine.registerConnection(record);
        const moved = { ...record, podId: 'pod-2' };
        await engine.registerConnection(moved);

        expect(await engine.getConnection(record.connectionId)).toEqual(moved);
        const stats = await engine.clusterStats();
        expect(stats.totalConnections).toBe(1);
        expect(stats.connectionsByType).toEqual({ master: 1, team: 0, readonly: 0 });
      });

      it('a closed resumable stream leaves the open counts at once and is resumable apart', async () => {
        const seed = connection('team', Date.now());
        const mcp = connection('team', Date.now(), {
          transport: 'streamable-http',
          resumable: false,
        });
        await engine.registerConnection(seed);
        await engine.registerConnection(mcp);

        await engine.markConnectionClosed(seed.connectionId);
        await engine.markConnectionClosed(mcp.connectionId);
        const stats = await engine.clusterStats();
        expect(stats.totalConnections).toBe(0);
        expect(stats.connectionsByTransport).toEqual({
          seed: 0,
          'streamable-http': 0,
          'legacy-sse': 0,
        });
        expect(stats.resumableConnections).toBe(1);
        // The resumable record stays for a resume; the other is gone.
        expect(await engine.getConnection(seed.connectionId)).toEqual(seed);
        expect(await engine.getConnection(mcp.connectionId)).toBeUndefined();
        // Touching a closed entry does not reopen it: it is reported, for its owner to register.
        expect(await engine.touchConnections([seed.connectionId])).toEqual([seed.connectionId]);
        expect((await engine.clusterStats()).totalConnections).toBe(0);

        // Resumed: open again.
        expect(await engine.registerConnection({ ...seed, podId: 'pod-2' })).toBe(true);
        const resumed = await engine.clusterStats();
        expect(resumed.totalConnections).toBe(1);
        expect(resumed.resumableConnections).toBe(0);
      });

      it('limits open streams per token sub across transports, counting each id once', async () => {
        const sub = unique('sub');
        const first = connection('team', Date.now(), { sub: sub });
        const second = connection('team', Date.now(), {
          sub: sub,
          transport: 'legacy-sse',
          resumable: false,
        });
        const third = connection('team', Date.now(), {
          sub: sub,
          transport: 'streamable-http',
          resumable: false,
        });
        const other = connection('team', Date.now());
        const limit = { maxPerToken: 2 };
        expect(await engine.registerConnection(first, limit)).toBe(true);
        expect(await engine.registerConnection(second, limit)).toBe(true);
        expect(await engine.registerConnection(third, limit)).toBe(false);
        expect(await engine.getConnection(third.connectionId)).toBeUndefined();
        // Another sub is not affected; an id already open is never refused nor counted twice.
        expect(await engine.registerConnection(other, limit)).toBe(true);
        expect(await engine.registerConnection({ ...first, podId: 'pod-2' }, limit)).toBe(true);
        expect(await engine.registerConnection(third, limit)).toBe(false);

        // Closing one frees a place, whether it stays resumable or not.
        await engine.markConnectionClosed(first.connectionId);
        expect(await engine.registerConnection(third, limit)).toBe(true);
        // Resuming the closed one would make three.
        expect(await engine.registerConnection(first, limit)).toBe(false);
        await engine.unregisterConnection(second.connectionId);
        expect(await engine.registerConnection(first, limit)).toBe(true);
        expect((await engine.clusterStats()).totalConnections).toBe(3);
      });

      it('sweeps open streams not touched (their pod died), then resumable ones after the window', async () => {
        const alive = connection('team', Date.now());
        const dead = connection('readonly', Date.now());
        const deadMcp = connection('team', Date.now(), {
          transport: 'legacy-sse',
          resumable: false,
        });
        const unknownId = unique('unknown');
        const sub = deadMcp.sub;
        for (const record of [alive, dead, deadMcp]) await engine.registerConnection(record);
        const window = { openStaleAfterMs: 60_000, resumeWindowMs: 60_000 };
        expect(await engine.sweepConnections(window)).toEqual({ lapsed: [], expired: [] });

        await sleep(400);
        // Unknown ids are reported (their owner registers them again), never created.
        expect(await engine.touchConnections([alive.connectionId, unknownId])).toEqual([unknownId]);
        const swept = await engine.sweepConnections({
          openStaleAfterMs: 200,
          resumeWindowMs: 60_000,
        });
        expect(swept.expired).toEqual([]);
        expect(swept.lapsed).toHaveLength(2);
        expect(swept.lapsed).toEqual(expect.arrayContaining([dead, deadMcp]));

        // The dead seed stream stays resumable; the other transport's entry is gone.
        expect(await engine.getConnection(dead.connectionId)).toEqual(dead);
        expect(await engine.getConnection(deadMcp.connectionId)).toBeUndefined();
        expect(await engine.getConnection(alive.connectionId)).toEqual(alive);
        expect(await engine.getConnection(unknownId)).toBeUndefined(); // touch never creates
        const stats = await engine.clusterStats();
        expect(stats.totalConnections).toBe(1);
        expect(stats.resumableConnections).toBe(1);
        // The dead stream's sub no longer counts it.
        expect(
          await engine.registerConnection(connection('team', Date.now(), { sub: sub }), {
            maxPerToken: 1,
          }),
        ).toBe(true);

        // Its resume window counts from its last touch (400 ms ago).
        expect(
          await engine.sweepConnections({ openStaleAfterMs: 60_000, resumeWindowMs: 200 }),
        ).toEqual({ lapsed: [], expired: [dead.connectionId] });
        expect(await engine.getConnection(dead.connectionId)).toBeUndefined();
        expect((await engine.clusterStats()).resumableConnections).toBe(0);
      });
    });

    describe('per-publish history TTL', () => {
      it('forgets a topic published with historyTtlMs after that time, keeping its done-key', async () => {
        const short = unique('short-lived');
        const long = unique('long-lived');
        const requestId = randomUUID();
        await engine.publish(short, 'e', '1', { historyTtlMs: 200, completesRequest: requestId });
        await engine.publish(long, 'e', '1');
        expect((await engine.readHistory(short, ZERO_EVENT_ID, 10)).events).toHaveLength(1);
        await sleep(400);
        expect((await engine.readHistory(short, ZERO_EVENT_ID, 10)).events).toEqual([]);
        expect(await engine.lastEventId(short)).toBe(ZERO_EVENT_ID);
        expect((await engine.readHistory(long, ZERO_EVENT_ID, 10)).events).toHaveLength(1);
        expect(await engine.isProcessed(requestId)).toBe(true);
      });
    });

    describe('history by bytes and event size', () => {
      it('keeps at most historyMaxBytes per topic, dropping the oldest and reporting them as truncated', async () => {
        const topic = unique('bytes');
        // 'ev' + 2,000 bytes of data: four fit in 8,192 bytes, five do not.
        const data = (i: number) => `${i}`.padEnd(2000, '.');
        const ids: string[] = [];
        for (let i = 0; i < 7; i += 1) ids.push(await engine.publish(topic, 'ev', data(i)));

        const all = await engine.readHistory(topic, ZERO_EVENT_ID, 100);
        expect(all.truncated).toBe(true);
        expect(all.events.map((e) => e.id)).toEqual(ids.slice(3));
        expect(all.events.map((e) => e.data)).toEqual([3, 4, 5, 6].map(data));
        const kept = all.events.reduce((n, e) => n + e.event.length + e.data.length, 0);
        expect(kept).toBeLessThanOrEqual(CONTRACT_HISTORY_MAX_BYTES);

        // A reader behind the evicted point missed events; one that saw the newest evicted did not.
        expect((await engine.readHistory(topic, ids[1], 100)).truncated).toBe(true);
        expect(await engine.readHistory(topic, ids[2], 100)).toEqual({
          events: all.events,
          truncated: false,
        });
        expect(await engine.lastEventId(topic)).toBe(ids[6]);
      });

      it('counts bytes, not characters, and evicts as many small events as a large one needs', async () => {
        const topic = unique('bytes-mixed');
        const ids: string[] = [];
        // 'e' + 'small <i>': 8 bytes each.
        for (let i = 0; i < 10; i += 1) ids.push(await engine.publish(topic, 'e', `small ${i}`));
        // 1,363 characters, 4,089 bytes of UTF-8 (+1 for the name); two of them take 8,180 of
        // the 8,192 bytes: room for exactly one small event.
        const wide = '€'.repeat(1363);
        ids.push(await engine.publish(topic, 'e', wide));
        ids.push(await engine.publish(topic, 'e', wide));
        const page = await engine.readHistory(topic, ZERO_EVENT_ID, 100);
        expect(page.events.map((e) => e.id)).toEqual(ids.slice(9));
        expect((await engine.readHistory(topic, ids[7], 100)).truncated).toBe(true);
        expect((await engine.readHistory(topic, ids[8], 100)).truncated).toBe(false);
      });

      it('refuses data over eventMaxBytes: nothing stored, nothing delivered, the size named', async () => {
        const topic = unique('too-large');
        const received = collector();
        await engine.subscribe([topic], received.listener);
        const before = await engine.publish(topic, 'e', 'ok');
        const tooLarge = 'é'.repeat(CONTRACT_EVENT_MAX_BYTES / 2 + 1); // 2 bytes each
        await expect(engine.publish(topic, 'e', tooLarge)).rejects.toMatchObject({
          name: 'EngineError',
          code: 'event_too_large',
          message: expect.stringContaining(
            `${CONTRACT_EVENT_MAX_BYTES + 2} bytes exceeds the ${CONTRACT_EVENT_MAX_BYTES}-byte limit`,
          ),
        });
        // Exactly the limit is fine.
        const atLimit = await engine.publish(topic, 'e', 'x'.repeat(CONTRACT_EVENT_MAX_BYTES));
        await waitFor(() => received.events.length >= 2, 5000, 'two events delivered');
        await sleep(20);
        expect(received.events.map((e) => e.id)).toEqual([before, atLimit]);
        const page = await engine.readHistory(topic, ZERO_EVENT_ID, 10);
        expect(page.events.map((e) => e.id)).toEqual([before, atLimit]);
      });
    });

    describe('history TTL cap', () => {
      it('caps the TTL of a topic, also against later publishes, so it goes soon after its last event', async () => {
        const topic = unique('capped-ttl');
        const other = unique('uncapped');
        await engine.publish(topic, 'e', '1');
        await engine.publish(other, 'e', '1');
        await engine.capHistoryTtl(topic, 300);
        // A later publish asks for the engine's TTL: the cap still holds.
        const last = await engine.publish(topic, 'e', '2');
        expect(await engine.lastEventId(topic)).toBe(last);
        await sleep(600);
        expect(await engine.readHistory(topic, ZERO_EVENT_ID, 10)).toEqual({
          events: [],
          truncated: false,
        });
        expect(await engine.lastEventId(topic)).toBe(ZERO_EVENT_ID);
        expect((await engine.readHistory(other, ZERO_EVENT_ID, 10)).events).toHaveLength(1);
      });

      it('holds for a topic capped before its first event, and is lifted by a call without ttl', async () => {
        const early = unique('capped-early');
        await engine.capHistoryTtl(early, 300);
        expect(await engine.readHistory(early, '1700000000000-0', 10)).toEqual({
          events: [],
          truncated: true,
        });
        await engine.publish(early, 'e', '1');
        await sleep(600);
        expect(await engine.lastEventId(early)).toBe(ZERO_EVENT_ID);

        const lifted = unique('cap-lifted');
        await engine.publish(lifted, 'e', '1');
        await engine.capHistoryTtl(lifted, 300);
        await engine.capHistoryTtl(lifted);
        await engine.publish(lifted, 'e', '2');
        await sleep(600);
        expect((await engine.readHistory(lifted, ZERO_EVENT_ID, 10)).events).toHaveLength(2);
      });
    });

    describe('key/value store with TTL', () => {
      it('sets, gets and deletes values, honouring the set modes', async () => {
        const key = unique('kv');
        expect(await engine.kv.get(key)).toBeUndefined();
        expect(await engine.kv.set(key, 'a', 10_000, 'ifPresent')).toBe(false);
        expect(await engine.kv.get(key)).toBeUndefined();
        expect(await engine.kv.set(key, 'a', 10_000, 'ifAbsent')).toBe(true);
        expect(await engine.kv.set(key, 'b', 10_000, 'ifAbsent')).toBe(false);
        expect(await engine.kv.get(key)).toBe('a');
        expect(await engine.kv.set(key, 'c', 10_000, 'ifPresent')).toBe(true);
        expect(await engine.kv.set(key, 'd', 10_000)).toBe(true);
        expect(await engine.kv.get(key)).toBe('d');
        expect(await engine.kv.delete(key)).toBe(true);
        expect(await engine.kv.delete(key)).toBe(false);
        expect(await engine.kv.get(key)).toBeUndefined();
      });

      it('expires values, and a get with refreshTtlMs or a touch slides the expiry', async () => {
        const fixed = unique('kv-fixed');
        const sliding = unique('kv-sliding');
        const touched = unique('kv-touched');
        await engine.kv.set(fixed, 'x', 300);
        await engine.kv.set(sliding, 'y', 300);
        await engine.kv.set(touched, 'z', 300);
        for (let i = 0; i < 4; i++) {
          await sleep(120);
          expect(await engine.kv.get(sliding, 300)).toBe('y');
          expect(await engine.kv.touch(touched, 300)).toBe(true);
        }
        expect(await engine.kv.get(fixed)).toBeUndefined();
        expect(await engine.kv.touch(fixed, 300)).toBe(false);
        expect(await engine.kv.get(sliding)).toBe('y');
        expect(await engine.kv.get(touched)).toBe('z');
      });

      it('refreshes and deletes a lock only for the owner it names', async () => {
        const key = unique('kv-lock');
        expect(await engine.kv.set(key, 'owner-1', 10_000, 'ifAbsent')).toBe(true);
        expect(await engine.kv.touch(key, 10_000, 'owner-2')).toBe(false);
        expect(await engine.kv.delete(key, 'owner-2')).toBe(false);
        expect(await engine.kv.get(key)).toBe('owner-1');
        expect(await engine.kv.touch(key, 10_000, 'owner-1')).toBe(true);
        expect(await engine.kv.delete(key, 'owner-1')).toBe(true);
        expect(await engine.kv.set(key, 'owner-2', 10_000, 'ifAbsent')).toBe(true);
      });
    });

    describe('window counters', () => {
      it('counts hits in a window, concurrent ones exactly, then starts again', async () => {
        const key = unique('rl');
        const before = Date.now();
        const first = await engine.counters.add(key, 400);
        expect(first.hits).toBe(1);
        expect(first.resetAt).toBeGreaterThanOrEqual(before + 300);
        expect(first.resetAt).toBeLessThanOrEqual(Date.now() + 400);
        const counts = await Promise.all(
          Array.from({ length: 20 }, () => engine.counters.add(key, 400)),
        );
        expect(counts.map((c) => c.hits).sort((a, b) => a - b)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 2),
        );
        // The window does not slide with hits: it ends where the first hit put it.
        for (const c of counts) expect(Math.abs(c.resetAt - first.resetAt)).toBeLessThan(100);
        expect((await engine.counters.add(key, 400, -1)).hits).toBe(20);
        await waitFor(() => Date.now() > first.resetAt + 50, 2000, 'the window to end');
        expect((await engine.counters.add(key, 400)).hits).toBe(1);
      });

      it('keeps keys apart, and reset ends a window', async () => {
        const a = unique('rl-a');
        const b = unique('rl-b');
        await engine.counters.add(a, 10_000);
        await engine.counters.add(a, 10_000);
        expect((await engine.counters.add(b, 10_000)).hits).toBe(1);
        await engine.counters.reset(a);
        expect((await engine.counters.add(a, 10_000)).hits).toBe(1);
      });
    });

    describe('document store', () => {
      interface Counter {
        name: string;
        n: number;
        tags: string[];
      }

      it('answers undefined and [] for what does not exist', async () => {
        const collection = unique('missing');
        expect(await engine.store.get(collection, 'x')).toBeUndefined();
        expect(await engine.store.list(collection)).toEqual([]);
        expect(await engine.store.update(collection, 'x', (d) => d)).toBeUndefined();
        expect(await engine.store.get(collection, 'x')).toBeUndefined();
      });

      it('inserts idempotently, returning the stored document either way', async () => {
        const collection = unique('insert');
        const original: Counter = { name: 'first', n: 1, tags: ['a'] };
        expect(await engine.store.insert(collection, 'c1', original)).toEqual(original);
        const again = await engine.store.insert(collection, 'c1', {
          name: 'second',
          n: 2,
          tags: [],
        });
        expect(again).toEqual(original);
        expect(await engine.store.get(collection, 'c1')).toEqual(original);
      });

      it('hands out copies: mutating a passed or returned document changes nothing stored', async () => {
        const collection = unique('copies');
        const doc: Counter = { name: 'c', n: 1, tags: ['a'] };
        const inserted = await engine.store.insert(collection, 'c1', doc);
        doc.tags.push('from-input');
        inserted.tags.push('from-insert');
        const got = (await engine.store.get<Counter>(collection, 'c1')) as Counter;
        got.n = 99;
        const listed = await engine.store.list<Counter>(collection);
        listed[0].name = 'changed';
        const updated = (await engine.store.update<Counter>(collection, 'c1', (d) => d)) as Counter;
        updated.tags.push('from-update');

        expect(await engine.store.get(collection, 'c1')).toEqual({ name: 'c', n: 1, tags: ['a'] });
      });

      it('applies update functions and returns the stored result', async () => {
        const collection = unique('update');
        await engine.store.insert<Counter>(collection, 'c1', { name: 'c', n: 1, tags: [] });
        const updated = await engine.store.update<Counter>(collection, 'c1', (d) => ({
          ...d,
          n: d.n + 1,
          tags: [...d.tags, 'x'],
        }));
        expect(updated).toEqual({ name: 'c', n: 2, tags: ['x'] });
        expect(await engine.store.get(collection, 'c1')).toEqual(updated);
      });

      it('lands every one of 50 concurrent updates of one document', async () => {
        const collection = unique('race');
        await engine.store.insert<Counter>(collection, 'c1', { name: 'c', n: 0, tags: [] });
        const results = await Promise.all(
          Array.from({ length: 50 }, () =>
            engine.store.update<Counter>(collection, 'c1', (d) => ({ ...d, n: d.n + 1 })),
          ),
        );
        expect(((await engine.store.get(collection, 'c1')) as Counter).n).toBe(50);
        // Each writer saw its own step: the results are 1..50, no lost or doubled update.
        const steps = results.map((r) => (r as Counter).n).sort((x, y) => x - y);
        expect(steps).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      });

      it('pages a collection in id order, reading after an id, saying whether more follow', async () => {
        const collection = unique('paged');
        expect(await engine.store.page(collection, undefined, 10)).toEqual({
          docs: [],
          more: false,
        });
        const ids = ['d', 'a', 'e', 'c', 'b'];
        for (const id of ids) await engine.store.insert(collection, id, { id });
        const first = await engine.store.page<{ id: string }>(collection, undefined, 2);
        expect(first).toEqual({ docs: [{ id: 'a' }, { id: 'b' }], more: true });
        const second = await engine.store.page<{ id: string }>(collection, 'b', 2);
        expect(second).toEqual({ docs: [{ id: 'c' }, { id: 'd' }], more: true });
        expect(await engine.store.page(collection, 'd', 2)).toEqual({
          docs: [{ id: 'e' }],
          more: false,
        });
        // An id that is not there still places the page (between its neighbours).
        expect(await engine.store.page(collection, 'bb', 1)).toEqual({
          docs: [{ id: 'c' }],
          more: true,
        });
        expect(await engine.store.page(collection, 'e', 5)).toEqual({ docs: [], more: false });
      });

      it('keeps collections apart and lists every document of one', async () => {
        const projects = unique('projects');
        const actors = unique('actors');
        await engine.store.insert(projects, 'p1', { id: 'p1' });
        await engine.store.insert(projects, 'p2', { id: 'p2' });
        await engine.store.insert(actors, 'p1', { id: 'actor' });

        const listed = await engine.store.list<{ id: string }>(projects);
        expect(listed.map((d) => d.id).sort()).toEqual(['p1', 'p2']);
        expect(await engine.store.get(actors, 'p1')).toEqual({ id: 'actor' });
      });
    });
  });
}

function unique(label: string): string {
  return `${label}-${randomUUID()}`;
}

function makeCommand(sub = 'alice'): CommandEnvelope {
  return {
    requestId: unique('req'),
    connectionId: unique('conn'),
    sub,
    tokenType: 'team',
    message: { method: 'tools/call', params: { name: 'list_projects', arguments: {} }, id: 1 },
    enqueuedAt: Date.now(),
  };
}

function consumeOptions(overrides: Partial<ConsumeOptions> = {}): ConsumeOptions {
  return {
    consumerId: unique('consumer'),
    concurrency: 4,
    claimIdleMs: NO_RECLAIM_MS,
    maxDeliveries: 3,
    onDeadLetter: async () => undefined,
    ...overrides,
  };
}

function connection(
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
async function refusal(admission: Promise<void>): Promise<EngineError> {
  try {
    await admission;
  } catch (error) {
    expect(error).toBeInstanceOf(EngineError);
    return error as EngineError;
  }
  throw new Error('expected the command to be refused, but it was queued');
}

async function backlogIs(
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

function collector(): { events: EngineEvent[]; listener: EventListener } {
  const events: EngineEvent[] = [];
  return { events, listener: (event) => events.push({ ...event }) };
}

/** Gates not yet opened, opened after each test whatever happened. */
const unopenedGates = new Set<() => void>();

/** A promise a test opens when it chooses, to hold a handler in flight. */
function gate(): { promise: Promise<void>; open: () => void } {
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
