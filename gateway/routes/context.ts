import express, { type RequestHandler } from 'express';
import type { AccessTokenVerifier } from '../../shared/auth';
import type { Config } from '../../shared/config';
import type { Engine } from '../../shared/engine/engine';
import { errors } from '../../shared/errors';
import type { Logger } from '../../shared/logger';
import type { Metrics } from '../../shared/metrics';
import type { TokenType } from '../../shared/types';
import { authenticate, requireAuth } from '../middleware/auth';
import type { DrainState } from '../drainState';
import type { HotRoutes } from '../hotRoutes';
import type { ConnectionHub } from '../seed/hub';
import type { ProtectedResource } from './protectedResource';
import { jsonNestsDeeperThan } from '../validation';

/** What every route module gets from the app factory. */
export interface RouteContext {
  config: Config;
  engine: Engine;
  logger: Logger;
  metrics: Metrics;
  hub: ConnectionHub;
  /** The app's drain state: new streams are refused while it is active. */
  drain: DrainState;
  verifier: AccessTokenVerifier;
  rateLimit: RequestHandler;
  /** Where the per-call routes are declared, to be served before Express's router. */
  hotRoutes: HotRoutes;
  /** Set with OAUTH_ISSUER: this gateway as an OAuth protected resource. */
  resource?: ProtectedResource;
}

interface GuardOptions {
  /** Accept `?token=` (GET /mcp/sse only). */
  allowQueryToken?: boolean;
  /** Token types allowed; all when absent. */
  types?: readonly TokenType[];
}

/** Authentication, rate limit and authorization, in that order, for an API route. */
export function guarded(ctx: RouteContext, options: GuardOptions = {}): RequestHandler[] {
  return [
    authenticate(ctx.verifier, { allowQueryToken: options.allowQueryToken ?? false }),
    ctx.rateLimit,
    requireAuth({ types: options.types, resource: ctx.resource, metrics: ctx.metrics }),
  ];
}

/** 503 while the engine is down: nothing could be queued or read. */
export function requireReady(engine: Engine): RequestHandler {
  return (_req, _res, next) =>
    next(engine.isReady() ? undefined : errors.unavailable('Event engine not ready'));
}

/**
 * The JSON body parser of every route: bodies over MAX_BODY_BYTES get 413, bodies nested
 * deeper than MAX_JSON_DEPTH 400 (checked on the raw bytes, before parsing), malformed JSON 400.
 */
export function jsonBody(config: Config): RequestHandler {
  return express.json({
    limit: config.maxBodyBytes,
    verify: (_req, _res, raw, encoding) => {
      if (jsonNestsDeeperThan(asUtf8(raw, encoding), config.maxJsonDepth)) {
        throw errors.badRequest(`JSON body nests deeper than ${config.maxJsonDepth} levels`);
      }
    },
  });
}

/** The body as UTF-8 bytes (what JSON over HTTP almost always is already) for the depth scan. */
function asUtf8(raw: Buffer, encoding: string): Buffer {
  if (/^utf-?8$/i.test(encoding)) return raw;
  try {
    return Buffer.from(new TextDecoder(encoding).decode(raw), 'utf8');
  } catch {
    // A charset TextDecoder lacks: scan the bytes as they are (it can only over-count).
    return raw;
  }
}
