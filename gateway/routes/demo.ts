import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Router } from 'express';
import { errors } from '../../shared/errors';
import type { Logger } from '../../shared/logger';

/**
 * Where the page is: beside the sources (ts-jest, ts-node), or, for the compiled
 * dist/gateway/routes/, at the source path the build and the image keep it (tsc copies no HTML).
 */
const CANDIDATES = [
  path.resolve(__dirname, '../public/demo.html'),
  path.resolve(__dirname, '../../../gateway/public/demo.html'),
];

/**
 * GET /demo: the browser demo (gateway/public/demo.html), one self-contained page. No token:
 * the page asks for one. Its Content-Security-Policy allows only its own inline script and
 * style (by hash), and fetch/EventSource to any http(s) server, since the page may be pointed
 * at another gateway.
 */
export function demoRoutes(logger: Logger): Router {
  const router = Router();
  const page = loadPage(logger);
  router.get('/demo', (_req, res) => {
    if (!page) throw errors.notFound('Demo page not installed');
    res
      .set('Content-Security-Policy', page.csp)
      .set('X-Content-Type-Options', 'nosniff')
      .set('Referrer-Policy', 'no-referrer')
      .set('Cache-Control', 'no-cache')
      // Computed once (the app computes no ETags): revalidation still gets its 304.
      .set('ETag', page.etag)
      .type('html')
      .send(page.html);
  });
  return router;
}

function loadPage(logger: Logger): { html: string; csp: string; etag: string } | undefined {
  for (const file of CANDIDATES) {
    let html: string;
    try {
      html = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const hashes = (tag: string) =>
      [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))]
        .map((m) => `'sha256-${createHash('sha256').update(m[1]).digest('base64')}'`)
        .join(' ');
    const csp = [
      "default-src 'none'",
      `script-src ${hashes('script')}`,
      `style-src ${hashes('style')}`,
      'connect-src http: https:',
      "img-src 'self' data:",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; ');
    const etag = `"${createHash('sha256').update(html).digest('base64url').slice(0, 27)}"`;
    return { html, csp, etag };
  }
  logger.warn('demo page not found; GET /demo answers 404', { looked: CANDIDATES });
  return undefined;
}
