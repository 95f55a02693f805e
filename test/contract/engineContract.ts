import type { Engine } from '../../shared/engine/engine';
import { describeLifecycleContract } from './lifecycleContract';
import { describeEventsContract } from './eventsContract';
import { describeCommandsContract } from './commandsContract';
import { describeRegistryContract } from './registryContract';
import { describeKeyValueContract } from './keyValueContract';
import { describeSetsContract } from './setsContract';
import { describeCountersContract } from './countersContract';
import { describeDocumentsContract } from './documentsContract';
import { unopenedGates } from './support';

export {
  CONTRACT_EVENT_MAX_BYTES,
  CONTRACT_HISTORY_MAX_BYTES,
  CONTRACT_HISTORY_MAX_LEN,
  CONTRACT_HISTORY_TTL_S,
} from './support';

/**
 * The engine contract, run against every Engine implementation (memory and Redis).
 *
 * Engine-agnostic on purpose: real time (no fake timers), short intervals, and waits on
 * conditions, since the Redis engine delivers asynchronously over separate connections.
 * Fixed sleeps appear only where a test checks that something does NOT happen.
 */

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

    describeLifecycleContract(() => engine);
    describeEventsContract(() => engine);
    describeCommandsContract(() => engine);
    describeRegistryContract(() => engine);
    describeKeyValueContract(() => engine);
    describeSetsContract(() => engine);
    describeCountersContract(() => engine);
    describeDocumentsContract(() => engine);
  });
}
