import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type Redis from 'ioredis';

type Arg = string | number;

/** The Lua scripts of lua/, as commands on the connection (EVALSHA, EVAL on NOSCRIPT). */
export interface ScriptCommands {
  /** Takes its key count first: the request's done-key is optional (KEYS[2]). */
  publishEvent(numberOfKeys: number, historyKey: string, ...args: Arg[]): Promise<string>;
  capHistory(historyKey: string, metaKey: string, capMs: string, ttlMs: number): Promise<number>;
  readHistory(
    historyKey: string,
    afterId: string,
    limit: number,
    maxLen: number,
  ): Promise<unknown[]>;
  enqueueCommands(queueKey: string, inFlightKey: string, ...args: Arg[]): Promise<unknown[]>;
  /** Takes its key count first: the command stream, then one in-flight set per token. */
  ackCommands(numberOfKeys: number, queueKey: string, ...args: Arg[]): Promise<number>;
  deadLetterCommands(queueKey: string, deadKey: string, ...args: Arg[]): Promise<unknown[]>;
  keepCommandsClaimed(queueKey: string, ...args: Arg[]): Promise<number>;
  takeCommands(
    queueKey: string,
    group: string,
    consumer: string,
    count: number,
  ): Promise<[[string, string[] | null][], string]>;
  pruneIdleConsumers(queueKey: string, group: string, maxIdleMs: number): Promise<number>;
  /** The four registry keys (hash, open, resumable, per sub) first. */
  registerConnection(...keysThenArgs: Arg[]): Promise<number>;
  releaseConnection(...keysThenArgs: Arg[]): Promise<number>;
  touchConnections(...keysThenArgs: Arg[]): Promise<string[]>;
  sweepConnections(...keysThenArgs: Arg[]): Promise<[string[], string[]]>;
  insertDocument(collectionKey: string, id: string, json: string): Promise<string>;
  updateDocument(collectionKey: string, ...args: Arg[]): Promise<number>;
  keyIfValue(key: string, expected: string, ttlMs: number): Promise<number>;
  addToWindow(key: string, windowMs: number, delta: number): Promise<[number, number]>;
  addMember(key: string, member: string, ttlMs: number, maxMembers: number): Promise<number>;
}

/**
 * Script name -> number of KEYS it takes (undefined: passed first at each call). The file is
 * lua/<name>.lua.
 */
const SCRIPTS: Record<keyof ScriptCommands, number | undefined> = {
  publishEvent: undefined,
  capHistory: 2,
  readHistory: 1,
  enqueueCommands: 2,
  ackCommands: undefined,
  deadLetterCommands: 2,
  keepCommandsClaimed: 1,
  takeCommands: 1,
  pruneIdleConsumers: 1,
  registerConnection: 4,
  releaseConnection: 4,
  touchConnections: 4,
  sweepConnections: 4,
  insertDocument: 1,
  updateDocument: 1,
  keyIfValue: 1,
  addToWindow: 1,
  addMember: 1,
};

export type ScriptedRedis = Redis & ScriptCommands;

let sources: Map<string, string> | undefined;

/** Defines every script on the connection; the files are read once per process. */
export function defineScripts(connection: Redis): ScriptedRedis {
  sources ??= readScripts();
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS)) {
    connection.defineCommand(name, { numberOfKeys, lua: sources.get(name) as string });
  }
  return connection as ScriptedRedis;
}

function readScripts(): Map<string, string> {
  const dir = luaDirectory();
  const result = new Map<string, string>();
  for (const name of Object.keys(SCRIPTS)) {
    result.set(name, readFileSync(path.join(dir, `${name}.lua`), 'utf8'));
  }
  return result;
}

/**
 * lua/ beside this module. tsc does not copy .lua files, so when running from dist/ without
 * them (a build that did not copy), fall back to the sources at the same relative place.
 */
function luaDirectory(): string {
  const beside = path.join(__dirname, 'lua');
  if (existsSync(beside)) return beside;
  const inSources = path.resolve(__dirname, '../../../../shared/engine/redis/lua');
  if (existsSync(inSources)) return inSources;
  throw new Error(`Redis engine Lua scripts not found in ${beside} (copy lua/ next to the build)`);
}
