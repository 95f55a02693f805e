/**
 * Issue 6: the browser demo (gateway/public/demo.html, GET /demo) in headless Chromium against
 * two gateway processes and a worker on one real Redis. Writes docs/demo.png (the README's
 * screenshot) once the master flow passed, when UPDATE_DEMO_SCREENSHOT=1 (other runs write it to
 * the temp folder, so a test run leaves the work tree as it was).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { issueToken } from '../../shared/auth';
import type { TokenType } from '../../shared/types';
import { startCluster, type TestCluster } from '../helpers/cluster';
import type { SpawnedProcess } from '../helpers/processes';

const CHROMIUM = '/usr/bin/chromium';
const SECRET = 'demo-test-secret-0123456789abcdef';
const SCREENSHOT =
  process.env.UPDATE_DEMO_SCREENSHOT === '1'
    ? path.resolve(__dirname, '../../docs/demo.png')
    : path.join(os.tmpdir(), 'mcpgw-demo.png');
const token = (type: TokenType) => issueToken(SECRET, { type, sub: `${type}-demo`, ttl: '1h' });

let cluster: TestCluster;
let gatewayA: SpawnedProcess;
let gatewayB: SpawnedProcess;
let browser: Browser;
const problems: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does it)`);
  }
  cluster = await startCluster('demo', {
    gateways: 2,
    workers: 1,
    jwtSecret: SECRET,
    env: { HEARTBEAT_INTERVAL_MS: '2000' },
  });
  [gatewayA, gatewayB] = cluster.gateways;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await cluster?.stop();
});

/** A fresh page on gateway A's /demo; CSP violations and script errors are collected. */
async function openDemo(): Promise<Page> {
  problems.length = 0;
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  const res = await page.goto(`${gatewayA.url}/demo`);
  expect(res?.status()).toBe(200);
  expect(res?.headers()['content-security-policy']).toContain("default-src 'none'");
  // The server URL defaults to the page's origin.
  expect(await page.inputValue('#server-url')).toBe(gatewayA.url);
  return page;
}

async function connectAs(page: Page, type: TokenType): Promise<void> {
  await page.fill('#token', token(type));
  await page.click('#connect');
  await page.waitForSelector('#status[data-state="connected"]');
  await page.waitForSelector('.entry[data-event="mcp-notification"]');
}

const entry = (page: Page, event: string, text: string) =>
  page.locator(`.entry[data-event="${event}"]`, { hasText: text }).first();

test('master: list tools, call list_projects, broadcast from the page and from gateway B', async () => {
  const page = await openDemo();
  await connectAs(page, 'master');
  expect(await page.textContent('#connection-id')).toMatch(/connection \S+/);

  await page.click('#list-tools');
  await entry(page, 'mcp-response', 'list_projects').waitFor();
  // The tool select is filled from the tools/list response.
  const options = await page.locator('#tool-name option').allTextContents();
  expect(options).toEqual(expect.arrayContaining(['list_projects', 'create_project']));

  await page.selectOption('#tool-name', 'list_projects');
  await page.fill('#tool-args', '{}');
  await page.click('#call-tool');
  await expect(page.textContent('#command-status')).resolves.toMatch(/accepted|sending/);
  const result = entry(page, 'tool-result', '"list_projects"');
  await result.waitFor();
  expect(await result.getAttribute('data-type')).toBe('tool-result');

  await page.fill(
    '#broadcast-message',
    JSON.stringify({ type: 'demo-broadcast', text: 'hello from the demo page' }),
  );
  await page.click('#broadcast');
  await entry(page, 'demo-broadcast', 'hello from the demo page').waitFor();
  await expect(page.textContent('#broadcast-status')).resolves.toContain('published');

  // A broadcast posted to the other gateway reaches this page too.
  const res = await fetch(`${gatewayB.url}/mcp/sse/broadcast`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token('master')}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ message: { text: 'posted to gateway B' } }),
  });
  expect(res.status).toBe(202);
  await entry(page, 'mcp-notification', 'posted to gateway B').waitFor();

  // Filters hide one event class and show it again.
  await page.uncheck('#filters input[value="tool-result"]');
  expect(await result.isHidden()).toBe(true);
  await page.check('#filters input[value="tool-result"]');
  expect(await result.isVisible()).toBe(true);

  expect(problems).toEqual([]);
  mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.evaluate('window.scrollTo(0, 0)');
  const png = await page.screenshot();
  expect(png.subarray(1, 4).toString()).toBe('PNG');
  writeFileSync(SCREENSHOT, png);
  await page.close();
});

test('readonly: a broadcast from the page shows the 403 clearly', async () => {
  const page = await openDemo();
  await connectAs(page, 'readonly');
  await page.click('#broadcast');
  const status = page.locator('#broadcast-status.error');
  await status.waitFor();
  expect(await status.textContent()).toMatch(/HTTP 403 .*master token/);
  await entry(page, 'http-error', '403').waitFor();
  await page.click('#disconnect');
  await page.waitForSelector('#status[data-state="disconnected"]');
  // The browser's 403 response logs a console error ("Failed to load resource"): expected.
  expect(problems.filter((p) => !/403/.test(p))).toEqual([]);
  await page.close();
});
