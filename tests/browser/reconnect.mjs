// The dashboard pauses while hidden, shows that it is disconnected when the
// service stops answering, and recovers when it is back. Talks with
// tests/dashboard_browser.rs, which stops and restarts the service:
//
//   → {"event":"live"}                 the page is showing data
//   → {"event":"paused", …}            requests made while the tab was hidden
//   → {"event":"ready"}                visible again, polling: stop the service now
//   ← stopped
//   → {"event":"disconnected", …}      the page says so (after_ms: since "stopped")
//   ← restarted
//   → {"event":"recovered", …}         the page is live again (after_ms: since "restarted")
//
// Usage: node reconnect.mjs <dashboard URL>

import { fail, hear, launch, overallDeadline, record, say, waitInPage, waitUntilLive } from './lib.mjs';

const [url] = process.argv.slice(2);
if (!url) fail('usage: node reconnect.mjs <dashboard URL>');
overallDeadline(50000);

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const seen = record(page);
await page.goto(url, { waitUntil: 'load' });
await waitUntilLive(page, 0, 15000);
say({ event: 'live' });

// Hidden: no polling at all. The test cannot minimise a headless window, so
// it tells the page what a browser tells it when the tab goes to the back.
const setHidden = (hidden) =>
  page.evaluate((h) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
// A request already started is counted before: hiding cancels the timers,
// so nothing may start after this.
await setHidden(true);
const before = seen.requests.length;
await page.waitForTimeout(5500); // longer than both polling intervals
const whileHidden = seen.requests.slice(before);
await setHidden(false);
const resumedAt = seen.requests.length;
const resumeStart = Date.now();
while (seen.requests.length === resumedAt && Date.now() - resumeStart < 5000) {
  await page.waitForTimeout(50);
}
say({ event: 'paused', requests_while_hidden: whileHidden, resumed: seen.requests.length > resumedAt });
say({ event: 'ready' });

await hear('stopped');
let start = Date.now();
await waitInPage(page, 'the page to show it is disconnected', () => document.body.dataset.connection === 'disconnected', undefined, 15000);
const disconnected = await page.evaluate(() => ({
  banner: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
  pill: document.getElementById('connection').textContent,
  stale: document.body.classList.contains('stale'),
}));
say({ event: 'disconnected', after_ms: Date.now() - start, ...disconnected });

await hear('restarted');
start = Date.now();
await waitInPage(page, 'the page to be live again', () => document.body.dataset.connection === 'live', undefined, 15000);
const recovered = await page.evaluate(() => ({
  banner: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
  pill: document.getElementById('connection').textContent,
  stale: document.body.classList.contains('stale'),
}));
say({ event: 'recovered', after_ms: Date.now() - start, ...recovered, page_errors: seen.page_errors, dialogs: seen.dialogs });
await browser.close();
process.exit(0);
