import type { EngineEvent, QueuedCommand } from '../../shared/engine/engine';
import { ZERO_EVENT_ID, compareEventIds } from '../../shared/engine/eventId';
import { MemoryEngine } from '../../shared/engine/memory';
import { Fifo } from '../../shared/engine/memory/fifo';
import type { CommandEnvelope } from '../../shared/types';
import { sleep, waitFor } from '../../devSupport/waitFor';

/** What only the memory engine promises, or can be tested on it alone (fake clocks). */

const T0 = Date.UTC(2024, 0, 1);
const TTL_S = 60;

function makeEngine(historyMaxLen = 10): MemoryEngine {
  return new MemoryEngine({ historyMaxLen, historyTtlS: TTL_S });
}

let requestCounter = 0;
function makeCommand(): CommandEnvelope {
  requestCounter += 1;
  return {
    requestId: `req-${requestCounter}`,
    connectionId: 'conn-1',
    sub: 'alice',
    tokenType: 'team',
    message: { method: 'tools/list' },
    enqueuedAt: Date.now(),
  };
}

const consumeDefaults = {
  consumerId: 'worker-1',
  concurrency: 1,
  maxDeliveries: 3,
  onDeadLetter: async () => undefined,
};

function refedTimerCount(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
}

describe('MemoryEngine', () => {
  describe('options', () => {
    it('refuses a negative history length or a non-positive ttl', () => {
      expect(() => new MemoryEngine({ historyMaxLen: -1, historyTtlS: 1 })).toThrow(RangeError);
      expect(() => new MemoryEngine({ historyMaxLen: 1.5, historyTtlS: 1 })).toThrow(RangeError);
      expect(() => new MemoryEngine({ historyMaxLen: 1, historyTtlS: 0 })).toThrow(RangeError);
    });

    it('refuses consumer options that cannot work', async () => {
      const engine = makeEngine();
      const handler = async () => undefined;
      const bad = [{ concurrency: 0 }, { claimIdleMs: 0 }, { maxDeliveries: 0 }];
      for (const override of bad) {
        expect(() =>
          engine.consumeCommands(handler, { ...consumeDefaults, claimIdleMs: 100, ...override }),
        ).toThrow(RangeError);
      }
      await engine.close();
    });
  });

  describe('with a fake clock', () => {
    beforeEach(() => jest.useFakeTimers({ now: T0 }));
    afterEach(() => jest.useRealTimers());

    it('forgets a topic not published to for historyTtlS', async () => {
      const engine = makeEngine();
      const id = await engine.publish('idle', 'e', '1');

      jest.setSystemTime(T0 + TTL_S * 1000 - 1);
      expect(await engine.lastEventId('idle')).toBe(id);

      jest.setSystemTime(T0 + TTL_S * 1000);
      expect(await engine.lastEventId('idle')).toBe(ZERO_EVENT_ID);
      expect(await engine.readHistory('idle', ZERO_EVENT_ID, 10)).toEqual({
        events: [],
        truncated: false,
      });
      expect(await engine.readHistory('idle', id, 10)).toEqual({ events: [], truncated: true });
      await engine.close();
    });

    it('keeps a topic alive while it is published to, and frees idle ones on publish', async () => {
      const engine = makeEngine();
      await engine.publish('busy', 'e', '1');
      await engine.publish('idle', 'e', '1');
      jest.setSystemTime(T0 + (TTL_S / 2) * 1000);
      await engine.publish('busy', 'e', '2');
      jest.setSystemTime(T0 + TTL_S * 1000 + 1);
      await engine.publish('other', 'e', '1');

      expect(engine.topicCount).toBe(2); // busy and other; idle was freed
      const busy = await engine.readHistory('busy', ZERO_EVENT_ID, 10);
      expect(busy.events.map((e) => e.data)).toEqual(['1', '2']);
      await engine.close();
    });

    it('forgets processed request ids after historyTtlS', async () => {
      const engine = makeEngine();
      await engine.markProcessed('r1');
      jest.setSystemTime(T0 + TTL_S * 1000 - 1);
      expect(await engine.isProcessed('r1')).toBe(true);
      jest.setSystemTime(T0 + TTL_S * 1000);
      expect(await engine.isProcessed('r1')).toBe(false);
      await engine.close();
    });

    it('makes ids from the clock, counting up within one ms and when the clock steps back', async () => {
      const engine = makeEngine();
      const ids = [await engine.publish('t', 'e', '1'), await engine.publish('t', 'e', '2')];
      jest.setSystemTime(T0 - 5000);
      ids.push(await engine.publish('t', 'e', '3'));
      jest.setSystemTime(T0 + 7);
      ids.push(await engine.publish('t', 'e', '4'));
      expect(ids).toEqual([`${T0}-0`, `${T0}-1`, `${T0}-2`, `${T0 + 7}-0`]);
      await engine.close();
    });

    it('clears consumer timers on stop and on close', async () => {
      const engine = makeEngine();
      const handler = async () => undefined;
      const stopped = engine.consumeCommands(handler, { ...consumeDefaults, claimIdleMs: 100 });
      engine.consumeCommands(handler, { ...consumeDefaults, claimIdleMs: 100 });
      expect(jest.getTimerCount()).toBe(2);
      await stopped.stop();
      expect(jest.getTimerCount()).toBe(1);
      await engine.close();
      expect(jest.getTimerCount()).toBe(0);
    });
  });

  it('keeps its reclaim timer from holding the process open', async () => {
    const engine = makeEngine();
    const before = refedTimerCount();
    engine.consumeCommands(async () => undefined, { ...consumeDefaults, claimIdleMs: 1000 });
    expect(refedTimerCount()).toBe(before);
    await engine.close();
  });

  it('keeps history empty with historyMaxLen 0, while ids and truncation still work', async () => {
    const engine = makeEngine(0);
    const first = await engine.publish('t', 'e', '1');
    const second = await engine.publish('t', 'e', '2');
    expect(compareEventIds(first, second)).toBeLessThan(0);
    expect(await engine.lastEventId('t')).toBe(second);
    expect(await engine.readHistory('t', first, 10)).toEqual({ events: [], truncated: true });
    expect(await engine.readHistory('t', second, 10)).toEqual({ events: [], truncated: false });
    await engine.close();
  });

  it('rejects an afterId that is not an event id', async () => {
    const engine = makeEngine();
    await expect(engine.readHistory('t', 'not-an-id', 10)).rejects.toMatchObject({
      code: 'invalid_argument',
    });
    await engine.close();
  });

  it('delivers in publish order to every listener when a listener publishes in turn', async () => {
    const engine = makeEngine();
    const seenByFirst: string[] = [];
    const seenBySecond: string[] = [];
    await engine.subscribe(['t'], (event) => {
      seenByFirst.push(event.data);
      if (event.data === 'outer') void engine.publish('t', 'e', 'inner');
    });
    await engine.subscribe(['t'], (event) => seenBySecond.push(event.data));

    await engine.publish('t', 'e', 'outer');
    expect(seenByFirst).toEqual(['outer', 'inner']);
    expect(seenBySecond).toEqual(['outer', 'inner']);
    await engine.close();
  });

  it('hands listeners frozen events, so none can alter history', async () => {
    const engine = makeEngine();
    let received: EngineEvent | undefined;
    await engine.subscribe(['t'], (event) => {
      received = event;
    });
    await engine.publish('t', 'e', 'original');
    expect(Object.isFrozen(received)).toBe(true);
    const page = await engine.readHistory('t', ZERO_EVENT_ID, 10);
    expect(page.events[0].data).toBe('original');
    await engine.close();
  });

  it('does not redeliver a command whose handler is still running past claimIdleMs', async () => {
    // In one process a running handler's consumer is alive; taking its command would only
    // run it twice. (Over Redis this cannot be known, so the contract does not test it.)
    const engine = makeEngine();
    const deliveries: QueuedCommand[] = [];
    let finished = false;
    engine.consumeCommands(
      async (queued) => {
        deliveries.push(queued);
        await sleep(200);
        finished = true;
      },
      { ...consumeDefaults, concurrency: 2, claimIdleMs: 20 },
    );
    await engine.enqueueCommand(makeCommand());
    await waitFor(() => finished, 5000, 'slow handler finished');
    expect(deliveries).toHaveLength(1);
    expect(await engine.commandBacklog()).toEqual({ waiting: 0, pending: 0, deadLettered: 0 });
    await engine.close();
  });

  it('survives an onDeadLetter that rejects, and waits for it on stop', async () => {
    const engine = makeEngine();
    let deadLetterDone = false;
    const consumer = engine.consumeCommands(
      async () => {
        throw new Error('always fails');
      },
      {
        ...consumeDefaults,
        maxDeliveries: 1,
        claimIdleMs: 20,
        onDeadLetter: async () => {
          await sleep(50);
          deadLetterDone = true;
          throw new Error('could not report');
        },
      },
    );
    await engine.enqueueCommand(makeCommand());
    await waitFor(async () => (await engine.commandBacklog()).deadLettered === 1, 5000);
    await consumer.stop();
    expect(deadLetterDone).toBe(true);
    await engine.close();
  });

  it('refuses new work after close but still answers reads', async () => {
    const engine = makeEngine();
    await engine.start();
    const id = await engine.publish('t', 'e', '1');
    await engine.close();

    expect(engine.isReady()).toBe(false);
    await expect(engine.publish('t', 'e', '2')).rejects.toMatchObject({ code: 'unavailable' });
    await expect(engine.enqueueCommand(makeCommand())).rejects.toMatchObject({
      code: 'unavailable',
    });
    await expect(engine.subscribe(['t'], () => undefined)).rejects.toMatchObject({
      code: 'unavailable',
    });
    expect(() =>
      engine.consumeCommands(async () => undefined, { ...consumeDefaults, claimIdleMs: 100 }),
    ).toThrow();
    expect(await engine.lastEventId('t')).toBe(id);
  });

  it('is not ready before start', () => {
    expect(makeEngine().isReady()).toBe(false);
  });
});

describe('Fifo', () => {
  it('keeps order and indexes across many pushes and shifts', () => {
    const fifo = new Fifo<number>();
    let nextIn = 0;
    let nextOut = 0;
    for (let round = 0; round < 50; round += 1) {
      for (let i = 0; i < 37; i += 1) fifo.push(nextIn++);
      for (let i = 0; i < 30; i += 1) expect(fifo.shift()).toBe(nextOut++);
      expect(fifo.length).toBe(nextIn - nextOut);
      for (let i = 0; i < fifo.length; i += 1) expect(fifo.at(i)).toBe(nextOut + i);
    }
    while (fifo.length > 0) expect(fifo.shift()).toBe(nextOut++);
    expect(fifo.shift()).toBeUndefined();
  });
});
