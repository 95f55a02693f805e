import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { createTokenVerifier, issueToken, mayCallTool } from '../../shared/auth';
import type { AuthFailure } from '../../shared/errors';
import { GatewayError } from '../../shared/errors';

const SECRET = 'auth-unit-secret-0123456789abcdef';

function expectUnauthorized(fn: () => unknown, message: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(GatewayError);
  expect(caught).toMatchObject({ status: 401, code: 'unauthorized', message });
}

describe('HS256 (JWT_SECRET)', () => {
  const verifier = createTokenVerifier({ jwtSecret: SECRET });

  it('accepts its own tokens with their claims', () => {
    const token = issueToken(SECRET, { type: 'team', sub: 'alice', ttl: '1h', tools: ['a'] });
    expect(verifier.verify(token)).toMatchObject({ sub: 'alice', type: 'team', tools: ['a'] });
  });

  it('refuses another secret, expiry, unknown types and a missing sub', () => {
    expectUnauthorized(
      () => verifier.verify(issueToken('another-secret-0123456789', { type: 'team', sub: 'a' })),
      'Invalid token',
    );
    const expired = jwt.sign({ type: 'team', exp: Math.floor(Date.now() / 1000) - 10 }, SECRET, {
      subject: 'a',
    });
    expectUnauthorized(() => verifier.verify(expired), 'Token expired');
    const wizard = jwt.sign({ type: 'wizard' }, SECRET, { subject: 'a' });
    expectUnauthorized(() => verifier.verify(wizard), 'Unknown token type');
    expectUnauthorized(
      () => verifier.verify(jwt.sign({ type: 'team' }, SECRET)),
      'Token has no sub',
    );
    expectUnauthorized(() => verifier.verify('not-a-jwt'), 'Invalid token');
  });

  it('verifies a token once, yet refuses it from its expiry on', () => {
    const sign = jest.spyOn(jwt, 'verify');
    const nowSpy = jest.spyOn(Date, 'now');
    try {
      const own = createTokenVerifier({ jwtSecret: SECRET });
      const exp = Math.floor(Date.now() / 1000) + 60;
      const token = jwt.sign({ type: 'team', exp }, SECRET, { subject: 'carol' });
      const first = own.verify(token);
      expect(own.verify(token)).toBe(first);
      expect(first).toMatchObject({ sub: 'carol', type: 'team', exp });
      expect(sign).toHaveBeenCalledTimes(1);

      nowSpy.mockReturnValue(exp * 1000);
      expectUnauthorized(() => own.verify(token), 'Token expired');
      // A token differing from a remembered one is verified on its own.
      expectUnauthorized(() => own.verify(`${token.slice(0, -2)}xx`), 'Invalid token');
    } finally {
      sign.mockRestore();
      nowSpy.mockRestore();
    }
  });

  it('refuses unsigned tokens (alg none)', () => {
    const unsigned = jwt.sign({ type: 'master' }, '', { algorithm: 'none', subject: 'a' });
    expectUnauthorized(() => verifier.verify(unsigned), 'Invalid token');
  });
});

describe.each([
  ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
] as const)('%s (JWT_PUBLIC_KEY)', (algorithm, makeKeys) => {
  const { privateKey, publicKey } = makeKeys();
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const verifier = createTokenVerifier({ jwtPublicKey: publicPem });

  it('accepts tokens signed with the private key', () => {
    const token = jwt.sign({ type: 'readonly' }, privateKey, { algorithm, subject: 'svc' });
    expect(verifier.verify(token)).toMatchObject({ sub: 'svc', type: 'readonly' });
  });

  it('refuses an HS256 token signed with the public key as a secret (algorithm confusion)', () => {
    const forged = jwt.sign({ type: 'master' }, publicPem, { algorithm: 'HS256', subject: 'x' });
    expectUnauthorized(() => verifier.verify(forged), 'Invalid token');
  });

  it('refuses tokens of another key pair', () => {
    const other = makeKeys().privateKey;
    const token = jwt.sign({ type: 'team' }, other, { algorithm, subject: 'svc' });
    expectUnauthorized(() => verifier.verify(token), 'Invalid token');
  });
});

test('an unreadable JWT_PUBLIC_KEY fails at start, not at the first request', () => {
  expect(() => createTokenVerifier({ jwtPublicKey: 'not a key' })).toThrow();
});

test('mayCallTool: readonly only read-only tools, allow-lists restrict every type', () => {
  expect(mayCallTool({ sub: 'a', type: 'readonly' }, 'list_projects', true)).toBe(true);
  expect(mayCallTool({ sub: 'a', type: 'readonly' }, 'create_project', false)).toBe(false);
  expect(mayCallTool({ sub: 'a', type: 'team' }, 'create_project', false)).toBe(true);
  expect(mayCallTool({ sub: 'a', type: 'master', tools: ['x'] }, 'create_project', false)).toBe(
    false,
  );
});

test('static refusals carry the reason metrics count them by', () => {
  const verifier = createTokenVerifier({ jwtSecret: SECRET });
  const reasonOf = (token: string) => {
    try {
      verifier.verify(token);
    } catch (err) {
      return (err as AuthFailure).reason;
    }
    return 'accepted';
  };
  const nowS = Math.floor(Date.now() / 1000);
  expect(reasonOf('not-a-jwt')).toBe('malformed');
  expect(reasonOf(issueToken('another-secret-0123456789', { type: 'team', sub: 'a' }))).toBe(
    'signature',
  );
  expect(reasonOf(jwt.sign({ type: 'team', exp: nowS - 10 }, SECRET, { subject: 'a' }))).toBe(
    'expired',
  );
  expect(reasonOf(jwt.sign({ type: 'team', nbf: nowS + 60 }, SECRET, { subject: 'a' }))).toBe(
    'not_before',
  );
  expect(reasonOf(jwt.sign({ type: 'wizard' }, SECRET, { subject: 'a' }))).toBe('claims');
  expect(reasonOf(issueToken(SECRET, { type: 'team', sub: 'a' }))).toBe('accepted');
});
