import type { Engine } from '../../shared/engine/engine';
import { sleep, waitFor } from '../../devSupport/waitFor';
import { CurrentEngine, unique, makeCommand, consumeOptions, gate } from './support';

/** The EngineLifecycle part of the engine contract. */
export function describeLifecycleContract(current: CurrentEngine): void {
  let engine: Engine;
  beforeEach(() => {
    engine = current();
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
}
