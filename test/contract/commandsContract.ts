import type {
  AdmissionLimits,
  CommandHandler,
  Engine,
  QueuedCommand,
} from '../../shared/engine/engine';
import { ZERO_EVENT_ID } from '../../shared/engine/eventId';
import { sleep, waitFor } from '../../devSupport/waitFor';
import {
  CLAIM_IDLE_MS,
  CurrentEngine,
  unique,
  makeCommand,
  consumeOptions,
  refusal,
  backlogIs,
  gate,
} from './support';

/** The CommandPort part of the engine contract. */
export function describeCommandsContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
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

    it("rejects a batch of two tokens' commands as the caller's mistake (RangeError), not an outage", async () => {
      await expect(
        engine.enqueueCommands([makeCommand('one'), makeCommand('other')]),
      ).rejects.toThrow(RangeError);
    });

    it('rejects a maxPerToken that is not a positive integer', () => {
      expect(() =>
        engine.consumeCommands(async () => undefined, consumeOptions({ maxPerToken: 0 })),
      ).toThrow(RangeError);
    });
  });
}
