// What the dashboard's browser scripts share: Debian's Chromium driven by
// playwright-core, a record of everything a page did, line messages to and
// from tests/dashboard_browser.rs (JSON lines on stdout, plain lines on stdin).

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

/** Fails the whole script after `ms`, so that a stuck browser cannot hang the test. */
export function overallDeadline(ms) {
  setTimeout(() => {
    fail(`the browser script did not finish within ${ms} ms`);
  }, ms).unref();
}

/** One JSON message for the Rust side. */
export function say(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

export function fail(message) {
  say({ event: 'error', message });
  process.exit(1);
}

/** Chromium as installed by scripts/install-test-deps, on a fresh profile. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // playwright-core starts it on a temporary user-data-dir of its own.
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
}

/** Records every request, failure, console error, page error and dialog of `page`. */
export function record(page) {
  const seen = { requests: [], failed: [], console_errors: [], page_errors: [], dialogs: [] };
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('requestfailed', (r) => {
    seen.failed.push(`${r.method()} ${r.url()}: ${r.failure() ? r.failure().errorText : 'failed'}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) seen.failed.push(`${r.request().method()} ${r.url()}: HTTP ${r.status()}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') seen.console_errors.push(m.text());
  });
  page.on('pageerror', (e) => seen.page_errors.push(String(e)));
  page.on('dialog', (d) => {
    seen.dialogs.push(`${d.type()}: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  return seen;
}

/** Polls `predicate` in the page until it is true, or fails saying `what`. */
export async function waitInPage(page, what, predicate, arg, timeoutMs = 15000) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 50 });
  } catch (e) {
    const state = await page
      .evaluate(() => ({
        connection: document.body && document.body.dataset.connection,
        history: document.body && document.body.dataset.history,
        banner: document.getElementById('banner') && document.getElementById('banner').textContent,
      }))
      .catch(() => ({}));
    fail(`timed out after ${timeoutMs} ms waiting for ${what}; page state ${JSON.stringify(state)}: ${e.message}`);
  }
}

/** The page shows live data: a health answer and at least `samples` history samples in every chart. */
export function waitUntilLive(page, samples, timeoutMs) {
  return waitInPage(
    page,
    `the dashboard to be live with ${samples} history sample(s)`,
    (n) => {
      const d = window.serverwatchDashboard;
      return (
        document.body.dataset.connection === 'live' &&
        Number(document.body.dataset.history) >= n &&
        d !== undefined &&
        Object.values(d.charts).every((c) => c.plot.data[0].length >= n)
      );
    },
    samples,
    timeoutMs,
  );
}

const stdinLines = createInterface({ input: process.stdin });
const pending = [];
const waiting = [];
stdinLines.on('line', (line) => {
  const next = waiting.shift();
  if (next) next(line.trim());
  else pending.push(line.trim());
});

/** Waits for the Rust side to send `expected` on stdin. */
export async function hear(expected) {
  const line = pending.length > 0 ? pending.shift() : await new Promise((resolve) => waiting.push(resolve));
  if (line !== expected) fail(`expected "${expected}" on stdin, got "${line}"`);
}

/** Stops reading stdin so that node can exit. */
export function closeInput() {
  stdinLines.close();
  process.stdin.destroy();
}
