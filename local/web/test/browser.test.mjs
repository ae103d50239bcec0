// The demo page in headless Chromium against a real `bcast-local serve`: log in, publish, see
// the event arrive, see heartbeats, the key rotating, the presence count and the missed notice,
// and save a screenshot.
//
// Chromium: $CHROMIUM, else /usr/bin/chromium (Debian's `chromium` package).
// Screenshot: $SCREENSHOT_DIR (default <repo>/artifacts)/demo.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { startServer, accountId } from '../../../clients/js/test/server.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const screenshotDir = process.env.SCREENSHOT_DIR ?? path.join(repo, 'artifacts');

test('the demo page logs in, publishes, shows the event, heartbeats and rotates the key', { timeout: 90000 }, async () => {
  const server = await startServer({ HEARTBEAT_INTERVAL_SECS: '2', BCAST_MAX_EVENTS: '5' });
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'bcast-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });

    await page.goto(server.url, { waitUntil: 'load' });
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10000 });
    assert.equal(await page.textContent('[data-testid=status]'), 'logged out');

    // Log in as a fresh account.
    const account = accountId('browser');
    await page.selectOption('[data-testid=client]', 'wp');
    await page.fill('[data-testid=account]', account);
    await page.click('[data-testid=login]');
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.startsWith('live'));
    assert.equal(await page.textContent('[data-testid=status]'), `live · wp/${account}`);
    const firstKey = await page.textContent('[data-testid=key]');
    assert.match(firstKey ?? '', /^[0-9a-f]{8}$/);

    // Publish from the form; the event arrives through polling.
    await page.fill('[data-testid=data]', JSON.stringify({ type: 'browser-test', text: 'hello from Chromium' }));
    await page.click('[data-testid=publish]');
    await page.waitForSelector('[data-testid=event] >> text=hello from Chromium', { timeout: 10000 });
    assert.match(await page.textContent('[data-testid=publish-result]') ?? '', /^stored at cursor /);
    assert.equal(await page.textContent('[data-testid=count]'), '1');

    // A heartbeat at the server's interval (2 s here) after the first one, and presence.
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=heartbeat]')?.dataset.beats ?? 0) >= 2, null, {
      timeout: 10000,
    });
    assert.match(await page.textContent('[data-testid=heartbeat]') ?? '', /\d\d:\d\d:\d\d · \d+ pending/);
    assert.equal(await page.textContent('#heartbeat-every'), '(every 2 s)');
    await page.waitForFunction(() => document.querySelector('[data-testid=presence]')?.textContent === '1 session', null, {
      timeout: 10000,
    });

    // The key rotated with every request.
    const rotations = Number(await page.textContent('[data-testid=rotations]'));
    assert.ok(rotations >= 3, `rotated ${rotations} times`);
    assert.notEqual(await page.textContent('[data-testid=key]'), firstKey);

    // Seven events at once while this account keeps five: the page says some were missed.
    assert.equal(await page.isVisible('[data-testid=missed]'), false);
    await server.publish({
      events: Array.from({ length: 7 }, (_, n) => ({ client: 'wp', account_id: account, data: { type: 'burst', n } })),
    });
    await page.waitForSelector('[data-testid=missed]', { state: 'visible', timeout: 10000 });
    await page.waitForFunction(() => document.querySelector('[data-testid=count]')?.textContent === '6');

    mkdirSync(screenshotDir, { recursive: true });
    const shot = path.join(screenshotDir, 'demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10000, 'the screenshot is an image');
    console.log(`screenshot: ${shot}`);

    // Logging out ends the session: nobody is online any more.
    await page.click('[data-testid=logout]');
    await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent === 'logged out');
    await page.waitForFunction(() => document.querySelector('[data-testid=presence]')?.textContent === '0 sessions', null, {
      timeout: 10000,
    });
    assert.deepEqual(problems, []);
  } finally {
    await context?.close();
    rmSync(userDataDir, { recursive: true, force: true });
    await server.stop();
  }
});
