import type { RegistryPort } from './engine';

/**
 * The registry port's methods, as a record of its keys: TypeScript refuses this record when a
 * method is added to the port and not here, so every engine gets every method.
 */
export const REGISTRY_PORT_METHODS: Record<keyof RegistryPort, true> = {
  registerConnection: true,
  markConnectionClosed: true,
  unregisterConnection: true,
  getConnection: true,
  touchConnections: true,
  sweepConnections: true,
  clusterStats: true,
};

/**
 * Makes `engine` answer each of a port's methods from `part`, the object that implements the
 * port (bound to it): an engine is its parts assembled, with no forwarding method per call.
 */
export function assemblePort<P extends object>(
  engine: P,
  part: P,
  methods: Record<keyof P, true>,
): void {
  for (const name of Object.keys(methods) as (keyof P)[]) {
    const method = part[name] as (...args: unknown[]) => unknown;
    engine[name] = method.bind(part) as P[keyof P];
  }
}
