import { MemoryEngine } from '../../../shared/engine/memory';
import { GatewayError } from '../../../shared/errors';
import { mcpNames } from '../../../shared/mcpTransports';
import { PodLiveness, acquireStandaloneLock } from '../../../gateway/mcpTransports/standaloneLock';

const SESSION = 'a'.repeat(32);
const TTL_MS = 45_000;

describe('standalone GET stream lock', () => {
  let engine: MemoryEngine;
  let podA: PodLiveness;
  let podB: PodLiveness;
  beforeEach(async () => {
    engine = new MemoryEngine({ historyMaxLen: 10, historyTtlS: 60 });
    await engine.start();
    podA = new PodLiveness(engine.kv, 'pod-a');
    podB = new PodLiveness(engine.kv, 'pod-b');
    await Promise.all([podA.start(), podB.start()]);
  });
  afterEach(async () => {
    await Promise.all([podA.stop(), podB.stop()]);
    await engine.close();
  });

  const conflict = (promise: Promise<unknown>) =>
    expect(promise).rejects.toMatchObject({ status: 409 } satisfies Partial<GatewayError>);

  it('answers 409 while the holding pod runs, on that pod and on another', async () => {
    const held = await acquireStandaloneLock(engine.kv, podA, SESSION, TTL_MS);
    await conflict(acquireStandaloneLock(engine.kv, podB, SESSION, TTL_MS));
    await conflict(acquireStandaloneLock(engine.kv, podA, SESSION, TTL_MS));
    await held.release();
    await (await acquireStandaloneLock(engine.kv, podB, SESSION, TTL_MS)).release();
  });

  it('is taken over at once when the holding pod stopped, long before the lock TTL', async () => {
    const old = await acquireStandaloneLock(engine.kv, podA, SESSION, TTL_MS);
    // A SIGKILLed pod's liveness key lapses (3 s); a SIGTERMed pod deletes it (stop()).
    await podA.stop();
    expect(await engine.kv.get(mcpNames.podAliveKey('pod-a'))).toBeUndefined();
    const taken = await acquireStandaloneLock(engine.kv, podB, SESSION, TTL_MS);
    // The old holder learns it lost the lock at its next refresh, and cannot release the new one.
    expect(await old.refresh()).toBe(false);
    await old.release();
    expect(await taken.refresh()).toBe(true);
    await conflict(acquireStandaloneLock(engine.kv, podA, SESSION, TTL_MS));
  });

  it('stop() deletes the pod key', async () => {
    expect(await podA.isAlive('pod-a')).toBe(true);
    await podA.stop();
    expect(await podB.isAlive('pod-a')).toBe(false);
  });
});
