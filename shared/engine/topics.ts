import type { TokenType } from '../types';

/** Topic names, shared by publishers and subscribers. Engines add their own prefix. */
export const topics = {
  /** Everything addressed to one seed-API connection (results, errors, progress). */
  connection: (connectionId: string) => `conn:${connectionId}`,
  /** Broadcasts to every connection opened with a token of this type. */
  tokenType: (type: TokenType) => `type:${type}`,
  /** Seed-API cancellations, heard by every worker; only the one running the call acts. */
  cancellations: 'control:cancel',
};
