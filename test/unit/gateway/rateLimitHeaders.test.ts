/**
 * The rate limit's answer headers on a per-call route (IETF draft-7, as express-rate-limit
 * wrote them before the limiter became the gateway's own): the policy, what is left of the
 * window, and past the limit a 429 whose Retry-After is the window's reset.
 */
import { startGateway, type GatewayHarness } from '../../helpers/gatewayHarness';
import { api, expectError } from './api';

describe('rate limit headers', () => {
  let gw: GatewayHarness;
  beforeAll(async () => {
    gw = await startGateway({ env: { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' } });
  });
  afterAll(() => gw.close());

  it('counts down in RateLimit, then 429 with Retry-After', async () => {
    const send = () =>
      api(gw.url, '/mcp/sse/send', {
        token: gw.tokens.team,
        json: { connectionId: 'no-such-connection', message: { method: 'ping', id: 1 } },
      });
    const answers = [await send(), await send(), await send(), await send()];
    expect(answers.map((a) => a.status)).toEqual([404, 404, 404, 429]);
    answers.forEach((answer, i) => {
      expect(answer.headers.get('ratelimit-policy')).toBe('3;w=60');
      expect(answer.headers.get('ratelimit')).toMatch(
        new RegExp(`^limit=3, remaining=${Math.max(2 - i, 0)}, reset=(59|60)$`),
      );
    });
    const refused = answers[3];
    expectError(refused, 429, 'rate_limited');
    expect(refused.headers.get('retry-after')).toMatch(/^(59|60)$/);
  });
});
