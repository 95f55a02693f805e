import { GatewayError, asGatewayError, engineErrors, errors } from '../../shared/errors';

describe('error vocabulary', () => {
  it('answers each engine error with its HTTP status, code and Retry-After', () => {
    const cases: Array<[Error, number, string, string | undefined]> = [
      [engineErrors.unavailable('down'), 503, 'unavailable', '1'],
      [engineErrors.queueFull(10), 503, 'queue_full', '5'],
      [engineErrors.inFlightLimit(3), 429, 'inflight_limit', '1'],
      [engineErrors.eventTooLarge(11, 10), 413, 'event_too_large', undefined],
      [engineErrors.invalidArgument('bad id'), 400, 'bad_request', undefined],
      [engineErrors.conflict('kept changing'), 409, 'conflict', undefined],
    ];
    for (const [engineError, status, code, retryAfter] of cases) {
      const answer = asGatewayError(engineError)!;
      expect(answer).toBeInstanceOf(GatewayError);
      expect(answer).toMatchObject({ status, code, message: engineError.message });
      expect(answer.headers['Retry-After']).toBe(retryAfter);
    }
  });

  it('keeps a GatewayError as it is and knows nothing of other errors', () => {
    const refused = errors.tooManyConnections(2);
    expect(asGatewayError(refused)).toBe(refused);
    expect(refused).toMatchObject({ status: 429, code: 'too_many_connections' });
    expect(asGatewayError(new Error('boom'))).toBeUndefined();
  });
});
