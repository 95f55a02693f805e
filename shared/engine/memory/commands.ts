import { assertOneToken } from '../admission';
import type { CommandPort } from '../engine';
import type { EngineGate } from '../gate';
import type { CommandQueue } from './commandQueue';
import type { ExpiringSet } from './expiringSet';

/**
 * The memory engine's command port: its queue, and the requests already processed (a set it
 * shares with the event port, where a final publish marks its request processed).
 */
export function memoryCommandPort(
  queue: CommandQueue,
  processed: ExpiringSet,
  gate: EngineGate,
): CommandPort {
  const port: CommandPort = {
    async enqueueCommand(command, limits) {
      return port.enqueueCommands([command], limits);
    },

    async enqueueCommands(commands, limits) {
      gate.assertOpen();
      assertOneToken(commands);
      queue.enqueue(commands, limits);
    },

    consumeCommands(handler, options) {
      // Refused as soon as close() begins: else it would start a consumer close() never stops.
      gate.assertNotClosing();
      return queue.consume(handler, options);
    },

    async markProcessed(requestId) {
      processed.add(requestId, Date.now());
    },

    async isProcessed(requestId) {
      return processed.has(requestId, Date.now());
    },

    async commandBacklog() {
      return queue.backlog();
    },
  };
  return port;
}
