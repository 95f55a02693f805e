import type { CommandPort, EventPort, RegistryPort } from './engine';

/** The ports an engine takes from its parts (lifecycle is its own; store, kv, counters are fields). */
export type AssembledPorts = CommandPort & EventPort & RegistryPort;

/**
 * Each port's methods, as records of its keys: TypeScript refuses a record when a method is
 * added to the port and not here, so every engine gets every method.
 */
const COMMAND_PORT_METHODS: Record<keyof CommandPort, true> = {
  enqueueCommand: true,
  enqueueCommands: true,
  consumeCommands: true,
  markProcessed: true,
  isProcessed: true,
  commandBacklog: true,
};
const EVENT_PORT_METHODS: Record<keyof EventPort, true> = {
  publish: true,
  capHistoryTtl: true,
  subscribe: true,
  readHistory: true,
  lastEventId: true,
};
const REGISTRY_PORT_METHODS: Record<keyof RegistryPort, true> = {
  registerConnection: true,
  markConnectionClosed: true,
  unregisterConnection: true,
  getConnection: true,
  touchConnections: true,
  sweepConnections: true,
  clusterStats: true,
};

/**
 * Makes `engine` answer every method of the command, event and registry ports from the part
 * that implements it (bound to that part): an engine is its parts assembled, with no
 * forwarding method per call.
 */
export function assemblePorts(
  engine: AssembledPorts,
  parts: { commands: CommandPort; events: EventPort; registry: RegistryPort },
  failure?: (error: unknown) => Error,
): void {
  assemblePort<CommandPort>(engine, parts.commands, COMMAND_PORT_METHODS, failure);
  assemblePort<EventPort>(engine, parts.events, EVENT_PORT_METHODS, failure);
  assemblePort<RegistryPort>(engine, parts.registry, REGISTRY_PORT_METHODS, failure);
}

/**
 * `failure`, when given, replaces the error of every rejected promise a method returns (the
 * Redis engine: a store failure becomes an `unavailable` engine error, which the gateway
 * answers with 503, rather than an unknown error it answers with 500).
 */
function assemblePort<P extends object>(
  engine: P,
  part: P,
  methods: Record<keyof P, true>,
  failure?: (error: unknown) => Error,
): void {
  for (const name of Object.keys(methods) as (keyof P)[]) {
    const method = (part[name] as (...args: unknown[]) => unknown).bind(part);
    engine[name] = (
      failure
        ? (...args: unknown[]) => {
            const result = method(...args);
            return result instanceof Promise
              ? result.catch((error: unknown) => Promise.reject(failure(error)))
              : result;
          }
        : method
    ) as P[keyof P];
  }
}
