import type { CommandEnvelope } from '../../types';
import { assertOneToken } from '../admission';
import type {
  AdmissionLimits,
  CommandConsumer,
  CommandHandler,
  CommandPort,
  ConsumeOptions,
} from '../engine';
import type { EngineGate } from '../gate';
import type { CommandQueue } from './commandQueue';
import type { ExpiringSet } from './expiringSet';

/** The memory engine's command port: its queue, and the requests already processed. */
export class MemoryCommands implements CommandPort {
  constructor(
    private readonly queue: CommandQueue,
    /** Shared with the event port: a final publish marks its request processed. */
    private readonly processed: ExpiringSet,
    private readonly gate: EngineGate,
  ) {}

  async enqueueCommand(command: CommandEnvelope, limits?: AdmissionLimits): Promise<void> {
    return this.enqueueCommands([command], limits);
  }

  async enqueueCommands(commands: CommandEnvelope[], limits?: AdmissionLimits): Promise<void> {
    this.gate.assertOpen();
    assertOneToken(commands);
    this.queue.enqueue(commands, limits);
  }

  consumeCommands(handler: CommandHandler, options: ConsumeOptions): CommandConsumer {
    // Refused as soon as close() begins: it would otherwise start a consumer close() never stops.
    this.gate.assertNotClosing();
    return this.queue.consume(handler, options);
  }

  async markProcessed(requestId: string): Promise<void> {
    this.processed.add(requestId, Date.now());
  }

  async isProcessed(requestId: string): Promise<boolean> {
    return this.processed.has(requestId, Date.now());
  }

  async commandBacklog(): Promise<{ waiting: number; pending: number; deadLettered: number }> {
    return this.queue.backlog();
  }
}
