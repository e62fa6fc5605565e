// Loads the dashboard at a laptop's and a phone's size and reports, as JSON
// lines on stdout, what it shows and what it did:
//
//   {"event":"figures", …}  as soon as the page is live: the figures shown,
//                           for the Rust side to compare with /health at once;
//   {"event":"done", …}     the charts, the layout at both sizes, every
//                           request made, failures, console errors, dialogs.
//
// Usage: node check-page.mjs <dashboard URL> <artifacts dir>

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { closeInput, launch, overallDeadline, record, say, waitUntilLive } from './lib.mjs';

const [url, artifacts] = process.argv.slice(2);
if (!url || !artifacts) {
  say({ event: 'error', message: 'usage: node check-page.mjs <dashboard URL> <artifacts dir>' });
  process.exit(2);
}
overallDeadline(50000);
closeInput();
mkdirSync(artifacts, { recursive: true });

const SIZES = [
  { name: '1280x800', viewport: { width: 1280, height: 800 } },
  { name: '390x844', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
];

/** The figures as the page shows them (text, as a person reads it). */
function shownFigures() {
  const text = (node) => (node ? node.textContent : null);
  const field = (name) => text(document.querySelector(`#application [data-field="${name}"], #overview [data-field="${name}"]`));
  const routes = {};
  for (const row of document.querySelectorAll('#routes-body tr')) {
    routes[row.dataset.route] = text(row.querySelector('[data-field="requests"]'));
  }
  const labels = {};
  for (const row of document.querySelectorAll('#labels-body tr')) {
    labels[row.dataset.label] = text(row.querySelector('[data-field="requests"]'));
  }
  return {
    status: field('status'),
    total_requests: field('total_requests'),
    error_count: field('error_count'),
    error_rate: field('error_rate'),
    average_response_time: field('average_response_time'),
    p50: field('p50'),
    p95: field('p95'),
    p99: field('p99'),
    routes,
    labels,
    labels_text: text(document.getElementById('labels-body')),
    labels_markup: document.querySelectorAll('#labels-body img, #labels-body script').length,
    recent_errors_text: text(document.getElementById('errors')),
    recent_errors_items: document.querySelectorAll('#error-list > li').length,
    recent_errors_markup: document.querySelectorAll('#error-list img, #error-list script').length,
    database_text: text(document.getElementById('database')),
    runtime_flavor: text(document.getElementById('runtime-flavor')),
    runtime_workers: text(document.getElementById('runtime-workers')),
    runtime_busy: text(document.getElementById('runtime-busy')),
    checks: Object.fromEntries(
      Array.from(document.querySelectorAll('#check-list > li'), (li) => [li.dataset.check, text(li.querySelector('.status'))]),
    ),
    checks_text: text(document.getElementById('check-list')),
    checks_markup: document.querySelectorAll('#check-list img, #check-list script').length,
    xss: typeof window.__xss === 'undefined' ? null : String(window.__xss),
    location: window.location.href,
  };
}

/** For each chart: its points, and whether its canvas shows the series' own colours. */
function chartReport() {
  const probe = document.createElement('canvas').getContext('2d', { willReadFrequently: true });
  const rgb = (colour) => {
    probe.clearRect(0, 0, 1, 1);
    probe.fillStyle = colour;
    probe.fillRect(0, 0, 1, 1);
    return Array.from(probe.getImageData(0, 0, 1, 1).data.slice(0, 3));
  };
  const report = {};
  for (const [name, chart] of Object.entries(window.serverwatchDashboard.charts)) {
    const u = chart.plot;
    const colours = u.series.slice(1).map((s, i) => rgb(s.stroke(u, i + 1)));
    const { width, height } = u.ctx.canvas;
    const pixels = u.ctx.getImageData(0, 0, width, height).data;
    let painted = 0;
    let series = 0;
    for (let i = 0; i < pixels.length; i += 4) {
      if (pixels[i + 3] === 0) continue;
      painted += 1;
      if (
        pixels[i + 3] > 200 &&
        colours.some(([r, g, b]) => Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b) < 40)
      ) {
        series += 1;
      }
    }
    report[name] = {
      points: u.data[0].length,
      series: u.series.length - 1,
      series_lengths: u.data.slice(1).map((d) => d.length),
      canvas: [width, height],
      painted_pixels: painted,
      series_pixels: series,
    };
  }
  return report;
}

/** Horizontal overflow (and what overflows), and every card's box. */
function layoutReport(viewportWidth) {
  const overflowing = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.right > viewportWidth + 0.5 && overflowing.length < 10) {
      overflowing.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className}: right ${Math.round(r.right)}`);
    }
  }
  const cards = {};
  for (const card of document.querySelectorAll('.card')) {
    const r = card.getBoundingClientRect();
    cards[card.id] = {
      left: r.left,
      right: r.right,
      width: r.width,
      height: r.height,
      visible: card.checkVisibility({ opacityProperty: true, visibilityProperty: true }),
    };
  }
  return {
    viewport_width: viewportWidth,
    scroll_width: document.documentElement.scrollWidth,
    inner_width: window.innerWidth,
    overflowing,
    cards,
  };
}

const browser = await launch();
const result = { event: 'done', sizes: {}, requests: [], failed: [], console_errors: [], page_errors: [], dialogs: [] };
for (const [i, size] of SIZES.entries()) {
  const context = await browser.newContext({
    viewport: size.viewport,
    isMobile: size.isMobile || false,
    hasTouch: size.hasTouch || false,
  });
  const page = await context.newPage();
  const seen = record(page);
  const started = Date.now();
  await page.goto(url, { waitUntil: 'load' });
  await waitUntilLive(page, 1, 15000);
  if (i === 0) {
    // Read first, before anything else happens: the Rust side compares
    // these with /health right away.
    say({ event: 'figures', ...(await page.evaluate(shownFigures)) });
  }
  const shot = join(artifacts, `dashboard-${size.name}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  result.sizes[size.name] = {
    charts: await page.evaluate(chartReport),
    layout: await page.evaluate(layoutReport, size.viewport.width),
    screenshot: shot,
    took_ms: Date.now() - started,
    location: page.url(),
    xss: await page.evaluate(() => (typeof window.__xss === 'undefined' ? null : String(window.__xss))),
  };
  await context.close();
  for (const key of ['requests', 'failed', 'console_errors', 'page_errors', 'dialogs']) {
    result[key].push(...seen[key]);
  }
}
await browser.close();
say(result);
