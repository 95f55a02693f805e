import { randomUUID } from 'node:crypto';
import type { Engine } from '../../shared/engine/engine';
import { ZERO_EVENT_ID, compareEventIds, isEventId } from '../../shared/engine/eventId';
import { sleep, waitFor } from '../../devSupport/waitFor';
import {
  CONTRACT_HISTORY_MAX_LEN,
  CONTRACT_HISTORY_MAX_BYTES,
  CONTRACT_EVENT_MAX_BYTES,
  CurrentEngine,
  unique,
  collector,
} from './support';

/** The EventPort part of the engine contract. */
export function describeEventsContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
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

    it('reports truncated to a reader whose last event the history does not hold', async () => {
      // As after a failover to a replica that never received the events a reader was sent live:
      // the history cannot show what followed the reader's last event.
      const topic = unique('gone');
      const kept = await engine.publish(topic, 'e', 'kept');
      const [ms, seq] = kept.split('-').map(Number);
      const seen = `${ms}-${seq + 1}`; // the next id, which the history will never hold
      await waitFor(() => Date.now() > ms + 1, 1000, 'the clock to pass the kept event');
      const next = await engine.publish(topic, 'e', 'next');
      expect(compareEventIds(next, seen)).toBeGreaterThan(0);
      expect(await engine.readHistory(topic, seen, 100)).toMatchObject({
        events: [{ id: next }],
        truncated: true,
      });
      // A reader whose last event is held is not told so.
      expect(await engine.readHistory(topic, kept, 100)).toMatchObject({
        events: [{ id: next }],
        truncated: false,
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
      for (let i = 0; i < 20; i += 1) ids.push(await engine.publish(topic, 'tool-result', `${i}`));
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

    it('copies an event to copyTo’s listeners as it is (its topic and id), keeping no history there', async () => {
      const topic = unique('copied');
      const copies = unique('copy-target');
      const direct = collector();
      const copied = collector();
      await engine.subscribe([topic], direct.listener);
      await engine.subscribe([copies], copied.listener);

      const first = await engine.publish(topic, 'mcp-notification', 'a\nb', { copyTo: copies });
      const plain = await engine.publish(topic, 'mcp-response', 'plain');
      const last = await engine.publish(topic, 'mcp-response', '{"x":1}', {
        copyTo: copies,
        historyTtlMs: 60_000,
        completesRequest: `copied-${randomUUID()}`,
      });
      await waitFor(() => direct.events.length === 3, 5000, 'the topic’s own listener got all');
      await waitFor(() => copied.events.length === 2, 5000, 'the copies arrived');
      await sleep(20);

      expect(direct.events.map((e) => e.id)).toEqual([first, plain, last]);
      expect(copied.events).toEqual([
        { topic, id: first, event: 'mcp-notification', data: 'a\nb' },
        { topic, id: last, event: 'mcp-response', data: '{"x":1}' },
      ]);
      expect((await engine.readHistory(topic, ZERO_EVENT_ID, 10)).events).toHaveLength(3);
      expect(await engine.readHistory(copies, ZERO_EVENT_ID, 10)).toEqual({
        events: [],
        truncated: false,
      });
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
}
