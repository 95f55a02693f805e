import type { TokenType } from '../types';

/** Topic names, shared by publishers and subscribers. Engines add their own prefix. */
export const topics = {
  /** Everything addressed to one seed-API connection (results, errors, progress). */
  connection: (connectionId: string) => `conn:${connectionId}`,
  /** Broadcasts to every connection opened with a token of this type. */
  tokenType: (type: TokenType) => `type:${type}`,
  /**
   * What every worker hears: cancels of running calls (seed API and MCP sessions) and clients'
   * replies to server requests. Only the worker running the call acts; event names say the kind.
   */
  workers: 'control:workers',
};
