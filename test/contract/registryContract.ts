import type { Engine } from '../../shared/engine/engine';
import { sleep } from '../../devSupport/waitFor';
import { CurrentEngine, unique, connection } from './support';

/** The RegistryPort part of the engine contract. */
export function describeRegistryContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
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
}
