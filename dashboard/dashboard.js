// serverwatch dashboard.
//
// Reads `health` every 2 s and `dashboard/history` every 5 s (relative URLs:
// the page is served at <mount>/dashboard, so both resolve under <mount>/),
// only while the tab is visible. Every value is inserted as text
// (textContent, createElement), never as markup; the charts (uPlot) are
// created once and then updated in place with setData.
'use strict';

(function () {
  const HEALTH_EVERY_MS = 2000;
  const HISTORY_EVERY_MS = 5000;
  const REQUEST_TIMEOUT_MS = 4000;
  const RECONNECTED_NOTICE_MS = 4000;
  const WINDOW_SECONDS = 15 * 60;
  const MIN_WINDOW_SECONDS = 60;
  const DATABASE_NOT_CONFIGURED = 'not configured';

  // ---------------------------------------------------------------------
  // DOM helpers: text only.

  const byId = (id) => document.getElementById(id);
  const fields = new Map(
    Array.from(document.querySelectorAll('[data-field]'), (el) => [el.dataset.field, el]),
  );

  function setText(node, value) {
    node.textContent = value === null || value === undefined || value === '' ? '–' : String(value);
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // ---------------------------------------------------------------------
  // Formatting. Fixed locale, so that the page reads the same everywhere.

  const integerFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const isNumber = (x) => typeof x === 'number' && Number.isFinite(x);

  function fmtInt(n) {
    return isNumber(n) ? integerFormat.format(n) : '–';
  }

  function fmtPercent(x) {
    return isNumber(x) ? x.toFixed(2) + '%' : '–';
  }

  /** Seconds as "0.250 ms", "4.75 ms", "31.2 ms" or "1.25 s". */
  function fmtDuration(seconds) {
    if (!isNumber(seconds)) return '–';
    if (seconds === 0) return '0 ms';
    const ms = seconds * 1000;
    if (ms < 1) return ms.toFixed(3) + ' ms';
    if (ms < 10) return ms.toFixed(2) + ' ms';
    if (ms < 1000) return ms.toFixed(1) + ' ms';
    return seconds.toFixed(2) + ' s';
  }

  /** Short form for chart axes. */
  function fmtDurationAxis(seconds) {
    if (!isNumber(seconds)) return '';
    if (seconds === 0) return '0';
    const ms = seconds * 1000;
    if (ms < 1000) return +ms.toPrecision(3) + ' ms';
    return +seconds.toPrecision(3) + ' s';
  }

  const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

  function fmtBytes(bytes) {
    if (!isNumber(bytes)) return '–';
    let value = Math.abs(bytes);
    let unit = 0;
    while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
      value /= 1024;
      unit += 1;
    }
    const digits = unit === 0 || value >= 100 ? 0 : 1;
    return (bytes < 0 ? '-' : '') + value.toFixed(digits) + ' ' + BYTE_UNITS[unit];
  }

  function fmtRate(perSecond) {
    if (!isNumber(perSecond)) return '–';
    return (perSecond < 10 ? perSecond.toFixed(2) : perSecond.toFixed(1)) + '/s';
  }

  function fmtRateAxis(perSecond) {
    return isNumber(perSecond) ? String(+perSecond.toPrecision(3)) : '';
  }

  function fmtClock(date) {
    const two = (n) => String(n).padStart(2, '0');
    return two(date.getHours()) + ':' + two(date.getMinutes()) + ':' + two(date.getSeconds());
  }

  function fmtScalar(value) {
    if (isNumber(value)) return Number.isInteger(value) ? fmtInt(value) : String(+value.toFixed(3));
    if (typeof value === 'string') return value;
    if (typeof value === 'boolean' || value === null) return String(value);
    return JSON.stringify(value);
  }

  // ---------------------------------------------------------------------
  // Colours. A route keeps its colour: it is derived from the route's name.

  // A route keeps its colour for the life of the page: it is given once, the
  // first time the route is seen, as the palette slot its name hashes to (the
  // next free one if that is taken), so it is also the same from one visit to
  // the next as long as the set of routes is.
  const PALETTE = [
    '#2563eb', '#dc2626', '#16a34a', '#d97706', '#9333ea', '#0891b2',
    '#db2777', '#65a30d', '#4f46e5', '#ea580c', '#0d9488', '#78716c',
  ];
  const routeColours = new Map();
  const slotsTaken = new Set();

  function routeColour(route) {
    let colour = routeColours.get(route);
    if (colour) return colour;
    let hash = 0x811c9dc5; // FNV-1a
    for (let i = 0; i < route.length; i += 1) {
      hash = Math.imul(hash ^ route.charCodeAt(i), 0x01000193);
    }
    let slot = (hash >>> 0) % PALETTE.length;
    for (let probe = 0; probe < PALETTE.length && slotsTaken.has(slot); probe += 1) {
      slot = (slot + 1) % PALETTE.length;
    }
    slotsTaken.add(slot);
    colour = PALETTE[slot];
    routeColours.set(route, colour);
    return colour;
  }

  const COLOURS = {
    requests: '#2563eb',
    errors: '#dc2626',
    p50: '#0d9488',
    p95: '#d97706',
    p99: '#9333ea',
    rss: '#7c3aed',
  };

  function translucent(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return 'rgba(' + (n >> 16) + ', ' + ((n >> 8) & 255) + ', ' + (n & 255) + ', ' + alpha + ')';
  }

  // ---------------------------------------------------------------------
  // Charts: created once, updated with setData, resized with setSize.

  const charts = {};
  const chartBoxes = {};

  function chartHeight() {
    return window.innerWidth < 480 ? 130 : 150;
  }

  function clockLabels(u, splits) {
    const seconds = splits.length > 1 && splits[1] - splits[0] < 60;
    return splits.map((t) => {
      const clock = fmtClock(new Date(t * 1000));
      return seconds ? clock : clock.slice(0, 5);
    });
  }

  /**
   * The last 15 minutes, or less while the history is younger (1 minute at
   * least). Read from the data: uPlot stretches a single point to a day.
   */
  function timeRange(u) {
    const xs = u.data[0];
    const last = xs.length > 0 ? xs[xs.length - 1] : Date.now() / 1000;
    const span = Math.min(WINDOW_SECONDS, Math.max(MIN_WINDOW_SECONDS, last - (xs.length > 0 ? xs[0] : last)));
    // A little room on the right, so that the newest point is not cut in half.
    return [last - span, last + span / 50];
  }

  function fromZero(u, min, max) {
    return [0, isNumber(max) && max > 0 ? max * 1.15 : 1];
  }

  function aroundData(u, min, max) {
    if (!isNumber(min) || !isNumber(max)) return [0, 1];
    const pad = Math.max((max - min) * 0.25, max * 0.05, 1);
    return [Math.max(0, min - pad), max + pad];
  }

  const AXIS = {
    stroke: '#64748b',
    font: '11px system-ui, sans-serif',
    grid: { stroke: '#eef2f7', width: 1 },
    ticks: { stroke: '#e2e8f0', width: 1, size: 4 },
  };

  function createChart(key, boxId, series, options) {
    const box = byId(boxId);
    chartBoxes[key] = box;
    const empty = make('div', 'chart-empty');
    empty.append(make('span', '', 'Waiting for the first sample (taken every 5 s)'));
    box.append(empty);
    const plot = new uPlot(
      {
        width: Math.max(160, box.clientWidth),
        height: chartHeight(),
        // Room on the right for the last time label, centred on its tick.
        padding: [10, 24, 0, 0],
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        legend: {
          show: options.legend || series.length > 1,
          live: false,
          markers: { fill: (u, i) => u.series[i].stroke(u, i) },
        },
        scales: {
          x: { time: true, range: timeRange },
          y: { range: options.range || fromZero },
        },
        axes: [
          Object.assign({}, AXIS, { values: clockLabels, space: 60 }),
          Object.assign({}, AXIS, {
            size: options.axisSize || 50,
            values: (u, splits) => splits.map(options.axis),
          }),
        ],
        series: [
          { value: (u, t) => (isNumber(t) ? fmtClock(new Date(t * 1000)) : '–') },
        ].concat(series.map((s) => seriesOptions(s, options.value))),
      },
      [[]].concat(series.map(() => [])),
      box,
    );
    charts[key] = { plot, empty };
    return plot;
  }

  function seriesOptions(s, format) {
    return {
      label: s.label,
      stroke: s.colour,
      width: 2,
      fill: s.fill ? translucent(s.colour, 0.1) : undefined,
      points: { size: 5, fill: s.colour },
      value: (u, v) => (isNumber(v) ? format(v) : '–'),
    };
  }

  function createCharts() {
    createChart('requests', 'chart-requests', [{ label: 'Requests', colour: COLOURS.requests, fill: true }], {
      axis: fmtRateAxis,
      value: fmtRate,
    });
    createChart('errors', 'chart-errors', [{ label: 'Error rate', colour: COLOURS.errors, fill: true }], {
      axis: (v) => (isNumber(v) ? +v.toPrecision(3) + '%' : ''),
      value: fmtPercent,
    });
    createChart(
      'latency',
      'chart-latency',
      [
        { label: 'p50', colour: COLOURS.p50 },
        { label: 'p95', colour: COLOURS.p95 },
        { label: 'p99', colour: COLOURS.p99 },
      ],
      { axis: fmtDurationAxis, value: fmtDuration, axisSize: 62 },
    );
    createChart('rss', 'chart-rss', [{ label: 'RSS', colour: COLOURS.rss, fill: true }], {
      axis: (v) => (isNumber(v) ? fmtBytes(v) : ''),
      value: fmtBytes,
      axisSize: 66,
      range: aroundData,
    });
    // One series per route, added as routes appear.
    createChart('routes', 'chart-routes', [], { axis: fmtRateAxis, value: fmtRate, legend: true });
    charts.routes.routes = [];

    let pending = false;
    const resize = () => {
      pending = false;
      for (const key of Object.keys(charts)) {
        const width = Math.max(160, chartBoxes[key].clientWidth);
        const plot = charts[key].plot;
        if (plot.width !== width || plot.height !== chartHeight()) {
          plot.setSize({ width, height: chartHeight() });
        }
      }
    };
    new ResizeObserver(() => {
      if (!pending) {
        pending = true;
        requestAnimationFrame(resize);
      }
    }).observe(document.querySelector('.grid'));
  }

  function setChart(key, data) {
    const chart = charts[key];
    chart.plot.setData(data);
    chart.empty.hidden = data[0].length > 0;
    chartBoxes[key].classList.toggle('is-empty', data[0].length === 0);
  }

  function renderHistory(doc) {
    const samples = Array.isArray(doc && doc.samples) ? doc.samples : [];
    const xs = samples.map((s) => s.time / 1000);
    // Without requests an interval has no latency: a gap, not a zero.
    const latency = (q) => samples.map((s) => (s.request_rate > 0 ? s[q] : null));
    setChart('requests', [xs, samples.map((s) => s.request_rate)]);
    setChart('errors', [xs, samples.map((s) => s.error_rate)]);
    setChart('latency', [xs, latency('p50'), latency('p95'), latency('p99')]);
    setChart('rss', [xs, samples.map((s) => s.rss_bytes)]);

    const routesChart = charts.routes;
    const seen = new Set(routesChart.routes);
    const fresh = [];
    for (const s of samples) {
      for (const route of Object.keys(s.routes || {})) {
        if (!seen.has(route)) {
          seen.add(route);
          fresh.push(route);
        }
      }
    }
    fresh.sort();
    for (const route of fresh) {
      routesChart.routes.push(route);
      const options = seriesOptions({ label: route, colour: routeColour(route) }, fmtRate);
      routesChart.plot.addSeries(options, routesChart.plot.series.length);
    }
    setChart(
      'routes',
      [xs].concat(routesChart.routes.map((r) => samples.map((s) => (s.routes && s.routes[r]) || 0))),
    );

    const every = isNumber(doc && doc.interval_seconds) ? doc.interval_seconds : 5;
    const last = samples[samples.length - 1];
    setText(fields.get('request_rate'), last ? fmtRate(last.request_rate) : '–');
    setText(byId('runtime-busy'), last ? fmtPercent(last.runtime_busy) : '–');
    byId('history-note').textContent = (
      samples.length === 0
        ? '· the first sample is taken ' + every + ' s after start'
        : '· a sample every ' + every + ' s, ' + samples.length + ' so far'
    );
    document.body.dataset.history = String(samples.length);
  }

  // ---------------------------------------------------------------------
  // The health document.

  let lastErrors = '';
  let startedAt = null;
  let lastRoutes = '';
  let lastLabels = '';

  function renderHealth(h) {
    const app = h.application || {};
    const latency = app.latency || {};

    const status = byId('status');
    status.textContent = String(h.status);
    status.className = 'status ' + (h.status === 'healthy' ? 'status-healthy' : 'status-unhealthy');
    setText(fields.get('uptime'), h.uptime && h.uptime.formatted);
    if (h.uptime && isNumber(h.uptime.seconds)) {
      startedAt = new Date(Date.now() - h.uptime.seconds * 1000);
      setText(byId('started'), startedAt.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' }));
    }

    const process = (h.memory_analysis && h.memory_analysis.process) || {};
    const info = process.process || {};
    setText(byId('pid'), info.pid);
    setText(byId('database-summary'), h.database && h.database.status);

    setText(fields.get('total_requests'), fmtInt(app.total_requests));
    setText(fields.get('error_count'), fmtInt(app.error_count));
    setText(fields.get('error_rate'), fmtPercent(app.error_rate));
    fields.get('error_rate').classList.toggle('bad', app.error_rate > 1);
    // Without a request there is no latency to speak of (/health says 0).
    const timed = (seconds) => (app.total_requests > 0 ? fmtDuration(seconds) : '–');
    setText(fields.get('average_response_time'), timed(app.average_response_time));
    setText(fields.get('p50'), timed(latency.p50));
    setText(fields.get('p95'), timed(latency.p95));
    setText(fields.get('p99'), timed(latency.p99));
    byId('application-empty').hidden = app.total_requests !== 0;
    renderStatusCodes(app.status_codes || {});

    const routes = app.routes || {};
    const routesKey = JSON.stringify(routes);
    if (routesKey !== lastRoutes) {
      lastRoutes = routesKey;
      renderRoutes(routes);
    }
    const labels = app.labels || {};
    const labelsKey = JSON.stringify(labels);
    if (labelsKey !== lastLabels) {
      lastLabels = labelsKey;
      renderLabels(labels);
    }
    const errors = Array.isArray(app.recent_errors) ? app.recent_errors : [];
    const errorsKey = JSON.stringify(errors);
    if (errorsKey !== lastErrors) {
      lastErrors = errorsKey;
      renderErrors(errors);
    }

    renderResources(info);
    renderMemory(info.memory_info || {}, (h.memory_analysis && h.memory_analysis.system) || {});
    renderThreads(Array.isArray(process.threads) ? process.threads : []);
    renderDatabase(h.database || {});
    renderRuntime(h.runtime || {});
    renderChecks(h.checks || {});
  }

  function renderRuntime(rt) {
    const watched = isNumber(rt.workers);
    byId('runtime-empty').hidden = watched;
    byId('runtime-tiles').hidden = !watched;
    byId('runtime-flavor').textContent = watched ? '· tokio, ' + String(rt.flavor).replace('_', '-') : '';
    setText(byId('runtime-queue'), fmtInt(rt.global_queue_depth));
    setText(byId('runtime-tasks'), fmtInt(rt.alive_tasks));
    setText(byId('runtime-workers'), fmtInt(rt.workers));
    const workers = Array.isArray(rt.worker_threads) ? rt.worker_threads : [];
    const parked = workers.filter((w) => w.parked).length;
    byId('runtime-parked').textContent = watched ? fmtInt(parked) + ' parked' : '';
  }

  function renderChecks(checks) {
    const names = Object.keys(checks).sort();
    const items = names.map((name) => {
      const c = checks[name] || {};
      const item = make('li', 'check');
      item.dataset.check = name;
      const healthy = c.status === 'healthy';
      item.append(
        make('span', 'status ' + (healthy ? 'status-healthy' : 'status-unhealthy'), healthy ? 'healthy' : 'failing'),
        make('span', 'check-name', name),
        make('span', 'check-duration muted', fmtDuration(c.duration_seconds)),
        make('span', 'check-critical muted small', c.critical ? 'critical' : 'not critical'),
      );
      if (!healthy) item.append(make('p', 'check-message', c.status));
      return item;
    });
    byId('check-list').replaceChildren(...items);
    byId('checks-empty').hidden = names.length > 0;
  }

  function renderStatusCodes(codes) {
    const box = byId('status-codes');
    const chips = Object.keys(codes)
      .sort()
      .map((code) => {
        const chip = make('span', 'code code-' + (/^[1-5]/.test(code) ? code[0] : 'x'));
        chip.append(make('b', '', code), document.createTextNode(fmtInt(codes[code])));
        chip.title = codes[code] + ' responses with status ' + code;
        return chip;
      });
    box.replaceChildren(...chips);
  }

  /** A route template that may wrap after each '/', and only there if it can. */
  function routeName(route) {
    const name = make('span', 'route-name');
    route.split(/(?<=\/)/).forEach((part, i) => {
      if (i > 0) name.append(document.createElement('wbr'));
      name.append(document.createTextNode(part));
    });
    return name;
  }

  function renderRoutes(routes) {
    Object.keys(routes).sort().forEach(routeColour);
    const names = Object.keys(routes).sort(
      (a, b) => (routes[b].requests || 0) - (routes[a].requests || 0) || (a < b ? -1 : 1),
    );
    const rows = names.map((name) => {
      const r = routes[name];
      const row = make('tr');
      row.dataset.route = name;
      const route = make('td', 'route');
      const cell = make('div', 'route-cell');
      const swatch = make('span', 'swatch');
      swatch.style.backgroundColor = routeColour(name);
      cell.append(swatch, routeName(name));
      route.append(cell);
      const errors = make('td', 'num' + (r.errors > 0 ? ' bad' : ''), fmtInt(r.errors));
      const requests = make('td', 'num', fmtInt(r.requests));
      requests.dataset.field = 'requests';
      row.append(
        route,
        requests,
        errors,
        make('td', 'num col-average', fmtDuration(r.average_response_time)),
        make('td', 'num', fmtDuration(r.latency && r.latency.p95)),
      );
      return row;
    });
    byId('routes-body').replaceChildren(...rows);
    byId('routes-empty').hidden = names.length > 0;
    byId('routes-table').hidden = names.length === 0;
  }

  /** The requests per value of each of the app's own labels. */
  function renderLabels(labels) {
    const rows = [];
    for (const name of Object.keys(labels).sort()) {
      const values = labels[name] || {};
      for (const value of Object.keys(values).sort()) {
        const v = values[value];
        const row = make('tr');
        row.dataset.label = name + '=' + value;
        const requests = make('td', 'num', fmtInt(v.requests));
        requests.dataset.field = 'requests';
        row.append(
          make('td', 'label-name', name),
          make('td', 'label-value', value),
          requests,
          make('td', 'num' + (v.errors > 0 ? ' bad' : ''), fmtInt(v.errors)),
        );
        rows.push(row);
      }
    }
    byId('labels-body').replaceChildren(...rows);
    byId('labels-table').hidden = rows.length === 0;
  }

  function renderErrors(errors) {
    const items = errors.map((e) => {
      const item = make('li', 'error-item');
      const head = make('div', 'error-head');
      head.append(
        make('span', 'error-status', e.status === undefined ? e.error_type || 'error' : e.status),
        make('span', 'error-endpoint', e.endpoint),
        make('time', 'error-time', e.timestamp),
      );
      item.append(head, make('p', 'error-message', e.error));
      return item;
    });
    byId('error-list').replaceChildren(...items);
    byId('errors-empty').hidden = errors.length > 0;
  }

  function renderResources(info) {
    setText(byId('memory-percent'), isNumber(info.memory_percent) ? info.memory_percent.toFixed(2) + '%' : '–');
    setText(byId('threads'), fmtInt(info.num_threads));
    setText(byId('open-files'), fmtInt(info.open_files));
    setText(byId('connections'), fmtInt(info.connections));
  }

  function share(part, total) {
    return isNumber(part) && isNumber(total) && total > 0 ? Math.min(100, (part / total) * 100) : 0;
  }

  function renderMemory(mem, system) {
    setText(byId('rss'), fmtBytes(mem.rss));
    setText(byId('vms'), fmtBytes(mem.vms));
    setText(byId('shared'), fmtBytes(mem.shared));
    setText(byId('data'), fmtBytes(mem.data));

    // used + buffers + cached + free is the total: the bar adds up to 100 %.
    const vm = system.virtual_memory || {};
    const cache = (vm.buffers || 0) + (vm.cached || 0);
    const parts = [
      ['used', vm.used],
      ['cached', cache],
      ['free', vm.free],
    ];
    for (const [name, bytes] of parts) {
      const pct = share(bytes, vm.total);
      byId('bar-' + name).style.width = pct + '%';
      setText(byId('mem-' + name), fmtBytes(bytes) + ' (' + pct.toFixed(0) + '%)');
    }
    setText(byId('mem-available'), fmtBytes(vm.available));
    byId('system-total').textContent = isNumber(vm.total) ? fmtBytes(vm.total) + ' in all' : '';
    byId('memory-bar').setAttribute(
      'aria-label',
      'System memory: ' + share(vm.used, vm.total).toFixed(0) + '% used',
    );

    const swap = system.swap_memory || {};
    const hasSwap = isNumber(swap.total) && swap.total > 0;
    byId('swap-bar').hidden = !hasSwap;
    byId('bar-swap').style.width = share(swap.used, swap.total) + '%';
    byId('swap-total').textContent = hasSwap ? fmtBytes(swap.total) + ' in all' : '';
    setText(
      byId('swap-text'),
      hasSwap
        ? 'Used ' + fmtBytes(swap.used) + ' (' + share(swap.used, swap.total).toFixed(0) + '%), free ' + fmtBytes(swap.free)
        : 'No swap configured.',
    );
  }

  function renderThreads(threads) {
    const items = threads.map((t) => {
      const item = make('li');
      const name = make('span', 'thread-name', (t.name || 'thread') + ' #' + t.thread_id);
      const cpu = make('span', 'thread-cpu', isNumber(t.cpu_seconds) ? t.cpu_seconds.toFixed(2) + ' s CPU' : '–');
      item.append(name, cpu);
      return item;
    });
    if (items.length === 0) items.push(make('li', 'muted', 'No thread figures on this platform.'));
    byId('thread-list').replaceChildren(...items);
  }

  /** Nested objects and arrays as dotted keys (`pools[0].idle`), values as they are. */
  function flatten(value, name, out) {
    if (Array.isArray(value)) {
      value.forEach((item, i) => flatten(item, name + '[' + i + ']', out));
    } else if (value && typeof value === 'object') {
      for (const key of Object.keys(value)) flatten(value[key], name ? name + '.' + key : key, out);
    } else {
      out.push([name, value]);
    }
    return out;
  }

  /** A database figure as text: durations (`…seconds`, `…duration`) in ms. */
  function fmtField(name, value) {
    return isNumber(value) && /(seconds|duration)$/.test(name) ? fmtDuration(value) : fmtScalar(value);
  }

  function renderDatabase(db) {
    const configured = db.status !== undefined && db.status !== DATABASE_NOT_CONFIGURED;
    byId('database-empty').hidden = configured;
    byId('database-details').hidden = !configured;
    if (!configured) return;
    const status = byId('database-status');
    status.textContent = String(db.status);
    status.className = 'status ' + (db.status === 'healthy' ? 'status-healthy' : 'status-unhealthy');
    const rows = flatten(db, '', [])
      .filter(([name]) => name !== 'status')
      .map(([name, value]) => {
        const row = make('div');
        row.append(make('dt', '', name), make('dd', '', fmtField(name, value)));
        return row;
      });
    byId('database-fields').replaceChildren(...rows);
  }

  // ---------------------------------------------------------------------
  // Connection state: live, disconnected (the service does not answer),
  // unauthorized (the token is missing or changed).

  const LABELS = { live: 'Live', disconnected: 'Disconnected', unauthorized: 'Not signed in' };
  const PILLS = { live: 'pill-live', disconnected: 'pill-down', unauthorized: 'pill-warn' };
  let connection = 'connecting';
  let lastAnswer = null;
  let noticeTimer = null;

  function showBanner(kind, title, text) {
    const banner = byId('banner');
    banner.className = 'banner' + (kind ? ' banner-' + kind : '');
    setText(byId('banner-title'), title);
    setText(byId('banner-text'), text);
    banner.hidden = false;
  }

  function setConnection(state) {
    const previous = connection;
    connection = state;
    document.body.dataset.connection = state;
    document.body.classList.toggle('stale', state === 'disconnected' || state === 'unauthorized');
    const pill = byId('connection');
    pill.className = 'pill ' + (PILLS[state] || 'pill-muted');
    setText(byId('connection-text'), LABELS[state] || 'Connecting…');

    clearTimeout(noticeTimer);
    if (state === 'disconnected') {
      const since = lastAnswer ? ' Showing the figures of ' + fmtClock(lastAnswer) + '.' : '';
      showBanner('', 'Disconnected.', 'The service is not answering; retrying every ' + HEALTH_EVERY_MS / 1000 + ' s.' + since);
    } else if (state === 'unauthorized') {
      showBanner(
        'warn',
        'Not signed in.',
        'The service wants its token: open this page once as …/dashboard?token=<the token>.',
      );
    } else if (state === 'live' && (previous === 'disconnected' || previous === 'unauthorized')) {
      showBanner('good', 'Reconnected.', 'The service is answering again.');
      noticeTimer = setTimeout(() => {
        byId('banner').hidden = true;
      }, RECONNECTED_NOTICE_MS);
    } else if (state === 'live') {
      byId('banner').hidden = true;
    }
  }

  class FetchFailure extends Error {
    constructor(kind, message) {
      super(message);
      this.kind = kind;
    }
  }

  async function fetchJson(url, acceptUnavailable) {
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      let response;
      try {
        response = await fetch(url, {
          cache: 'no-store',
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
          signal: controller.signal,
        });
      } catch (e) {
        throw new FetchFailure('disconnected', String(e));
      }
      if (response.status === 401) throw new FetchFailure('unauthorized', 'HTTP 401');
      // /health answers 503, with its document, when the service is unhealthy.
      if (!response.ok && !(acceptUnavailable && response.status === 503)) {
        throw new FetchFailure('disconnected', 'HTTP ' + response.status);
      }
      try {
        return await response.json();
      } catch (e) {
        throw new FetchFailure('disconnected', 'not JSON: ' + e);
      }
    } finally {
      clearTimeout(timeout);
    }
  }

  // ---------------------------------------------------------------------
  // Polling: one request of each kind at a time, none while hidden.

  const polls = {
    health: { every: HEALTH_EVERY_MS, timer: null, busy: false, run: pollHealth },
    history: { every: HISTORY_EVERY_MS, timer: null, busy: false, run: pollHistory },
  };

  function schedule(poll, delay) {
    clearTimeout(poll.timer);
    poll.timer = document.hidden ? null : setTimeout(() => runPoll(poll), delay);
  }

  async function runPoll(poll) {
    if (poll.busy) return;
    poll.busy = true;
    try {
      await poll.run();
    } finally {
      poll.busy = false;
      schedule(poll, poll.every);
    }
  }

  async function pollHealth() {
    let doc;
    try {
      doc = await fetchJson('health', true);
    } catch (e) {
      if (!(e instanceof FetchFailure)) throw e;
      if (connection !== e.kind) setConnection(e.kind);
      return;
    }
    const previous = connection;
    lastAnswer = new Date();
    renderHealth(doc);
    setText(byId('updated'), 'Updated ' + fmtClock(lastAnswer));
    if (previous !== 'live') setConnection('live');
    // Back after an outage: catch the charts up now rather than at their next tick.
    if ((previous === 'disconnected' || previous === 'unauthorized') && !polls.history.busy) {
      schedule(polls.history, 0);
    }
  }

  async function pollHistory() {
    try {
      renderHistory(await fetchJson('dashboard/history', false));
    } catch (e) {
      if (!(e instanceof FetchFailure)) throw e;
      // The health poll tells the connection state; the charts keep their data.
    }
  }

  function start() {
    for (const poll of Object.values(polls)) {
      if (!poll.busy) schedule(poll, 0);
    }
  }

  function stop() {
    for (const poll of Object.values(polls)) {
      clearTimeout(poll.timer);
      poll.timer = null;
    }
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      stop();
      if (connection === 'live') {
        setText(byId('connection-text'), 'Paused');
      }
    } else {
      if (connection === 'live') setText(byId('connection-text'), 'Live');
      start();
    }
  });

  createCharts();
  // For a look from the browser console (and the browser tests).
  window.serverwatchDashboard = Object.freeze({ charts });
  start();
})();
