import type { Engine } from '../../shared/engine/engine';
import {
  MAX_RESOURCE_SUBSCRIPTIONS,
  RESOURCE_URI_MAX_CHARS,
  mcpNames,
  type McpSessionRecord,
} from '../../shared/mcpTransports';
import { RPC_ERRORS, type ErrorDetail } from '../../shared/protocol';
import type { McpCommand } from '../../shared/types';
import { publishSubscriptionsChanged } from './changes';

export const SUBSCRIPTION_METHODS: ReadonlySet<string> = new Set([
  'resources/subscribe',
  'resources/unsubscribe',
]);

/**
 * The resource subscriptions of 2025 sessions, kept in the engine (a set of URIs per session,
 * at most MAX_RESOURCE_SUBSCRIPTIONS, living as long as the session), so any worker serves
 * resources/subscribe and resources/unsubscribe and the subscriptions outlive any pod.
 *
 * The session's server decides whether a subscription is accepted (its resources/subscribe
 * handler: the backlog's checks the token may read the URI); once it accepted, the URI is
 * recorded here and every gateway is told, so the pod holding the session's GET stream reads
 * the set again and delivers `notifications/resources/updated` for those URIs from then on.
 */
export class SessionSubscriptions {
  constructor(
    private readonly engine: Pick<Engine, 'sets' | 'kv' | 'publish'>,
    private readonly sessionTtlMs: number,
  ) {}

  /** Why a subscribe or unsubscribe is refused before the server sees it, if it is. */
  async refusal(command: McpCommand): Promise<ErrorDetail | undefined> {
    const uri = command.message.params?.uri;
    if (typeof uri !== 'string' || uri.length === 0) {
      return { code: RPC_ERRORS.invalidParams, message: 'params.uri must be a non-empty string' };
    }
    if (uri.length > RESOURCE_URI_MAX_CHARS) {
      return {
        code: RPC_ERRORS.invalidParams,
        message: `params.uri is ${uri.length} characters long, over ${RESOURCE_URI_MAX_CHARS}`,
      };
    }
    if (command.message.method !== 'resources/subscribe') return undefined;
    const members = await this.engine.sets.members(this.key(command));
    if (members.length >= MAX_RESOURCE_SUBSCRIPTIONS && !members.includes(uri)) return full();
    return undefined;
  }

  /** Records what the server accepted; the error to answer instead when the set filled meanwhile. */
  async apply(command: McpCommand): Promise<ErrorDetail | undefined> {
    const uri = String(command.message.params?.uri);
    const { sessionId } = command.mcp;
    const key = this.key(command);
    if (command.message.method === 'resources/subscribe') {
      const added = await this.engine.sets.add(
        key,
        uri,
        this.sessionTtlMs,
        MAX_RESOURCE_SUBSCRIPTIONS,
      );
      if (added === 'full') return full();
      if (added === 'present') return undefined;
      await this.markSubscribing(sessionId);
    } else if (!(await this.engine.sets.remove(key, uri))) {
      return undefined;
    }
    await publishSubscriptionsChanged(this.engine, sessionId);
    return undefined;
  }

  /**
   * Flags the session record (once), so each request of the session slides the subscription
   * set's TTL with the record's. Only ever adds the flag: writers racing agree.
   */
  private async markSubscribing(sessionId: string): Promise<void> {
    const recordKey = mcpNames.sessionKey(sessionId);
    const json = await this.engine.kv.get(recordKey);
    if (json === undefined) return;
    const record = JSON.parse(json) as McpSessionRecord;
    if (record.subscribes) return;
    await this.engine.kv.set(
      recordKey,
      JSON.stringify({ ...record, subscribes: true }),
      this.sessionTtlMs,
      'ifPresent',
    );
  }

  private key(command: McpCommand): string {
    return mcpNames.subscriptionsKey(command.mcp.sessionId);
  }
}

function full(): ErrorDetail {
  return {
    code: RPC_ERRORS.invalidParams,
    message: `This session holds ${MAX_RESOURCE_SUBSCRIPTIONS} resource subscriptions, the most it may: unsubscribe from one first`,
  };
}
