/**
 * What a resume reads: both topics after its cursor, merged in id order; and the token type's
 * history read once for every resume of the same turn (a resume storm), never served stale to
 * a read asked for later.
 */
import { MemoryEngine } from '../../../shared/engine/memory';
import { topics } from '../../../shared/protocol';
import { START_CURSOR } from '../../../gateway/seed/cursor';
import { SharedHistoryReads, readMissed } from '../../../gateway/seed/replay';

describe('SharedHistoryReads', () => {
  let engine: MemoryEngine;
  const typeTopic = topics.tokenType('team');

  beforeEach(async () => {
    engine = new MemoryEngine({ historyMaxLen: 1000, historyTtlS: 3600 });
    await engine.start();
  });
  afterEach(async () => {
    await engine.close();
  });

  it('reads the token type topic once for every resume of one turn, each getting all it missed', async () => {
    for (let seq = 1; seq <= 3; seq++) await engine.publish(typeTopic, 'news', `{"seq":${seq}}`);
    const conns = Array.from({ length: 50 }, (_, i) => ({
      connectionId: `conn-${i}`,
      tokenType: 'team' as const,
    }));
    for (const conn of conns) {
      await engine.publish(topics.connection(conn.connectionId), 'tool-result', '{}');
    }
    const reads = jest.spyOn(engine, 'readHistory');
    const shared = new SharedHistoryReads(engine);

    const replays = await Promise.all(conns.map((c) => readMissed(shared, c, START_CURSOR)));

    const typeReads = reads.mock.calls.filter(([topic]) => topic === typeTopic);
    expect(typeReads).toHaveLength(1);
    // Each connection's own topic is still read for it.
    expect(reads.mock.calls.length).toBe(1 + conns.length);
    for (const [i, replay] of replays.entries()) {
      const news = replay.events.filter((e) => e.fromTypeTopic).map((e) => e.ev.data);
      expect(news).toEqual(['{"seq":1}', '{"seq":2}', '{"seq":3}']);
      const own = replay.events.filter((e) => !e.fromTypeTopic).map((e) => e.ev.topic);
      expect(own).toEqual([topics.connection(conns[i].connectionId)]);
      expect(replay.truncated).toBe(false);
    }
  });

  it('sends a read asked for in a later turn again: it sees what was published since', async () => {
    const shared = new SharedHistoryReads(engine);
    await engine.publish(typeTopic, 'news', '{"seq":1}');
    const first = await shared.readHistory(typeTopic, '0-0', 100);
    await engine.publish(typeTopic, 'news', '{"seq":2}');
    const second = await shared.readHistory(typeTopic, '0-0', 100);
    expect(first.events.map((e) => e.data)).toEqual(['{"seq":1}']);
    expect(second.events.map((e) => e.data)).toEqual(['{"seq":1}', '{"seq":2}']);
  });

  it('hands a failed read to every caller that shared it', async () => {
    const shared = new SharedHistoryReads(engine);
    jest.spyOn(engine, 'readHistory').mockRejectedValueOnce(new Error('redis down'));
    const both = [
      shared.readHistory(typeTopic, '0-0', 100),
      shared.readHistory(typeTopic, '0-0', 100),
    ];
    for (const read of both) await expect(read).rejects.toThrow('redis down');
  });
});
