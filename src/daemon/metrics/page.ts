/**
 * The status page: static HTML, CSS and a small script (no build step, no external assets)
 * that polls status.json every few seconds and draws each peer's throughput with uPlot, which
 * the daemon serves from node_modules. The script is plain ES2017 for the browser; keep it
 * free of backticks and `${`, as it lives in a template literal here.
 */

/** The page; QUERY becomes "?token=..." when the token came in the URL, so the assets get it too. */
export const pageHtml = (query: string): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tvpn status</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="uplot.css${query}">
<link rel="stylesheet" href="status.css${query}">
</head>
<body>
<header><h1 id="title">tvpn</h1><p id="summary"></p><p id="error" hidden></p></header>
<main id="peers"></main>
<script src="uplot.js${query}"></script>
<script src="status.js${query}"></script>
</body>
</html>
`;

export const PAGE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 960px; padding: 1em; color: #222; }
h1 { font-size: 1.4em; margin: 0; }
#summary { color: #555; margin: .2em 0 1em; word-break: break-all; }
#error { color: #b00; }
.peer { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; margin-bottom: 1em; }
.peer h2 { font-size: 1.1em; margin: 0 0 .3em; }
.peer h2 .state { font-weight: normal; color: #777; font-size: .9em; margin-left: .5em; }
.peer dl { display: grid; grid-template-columns: max-content 1fr; gap: .1em 1em; margin: 0 0 .5em; }
.peer dt { color: #666; }
.peer dd { margin: 0; word-break: break-all; }
`;

export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var POLL_MS = 2000;
  var query = location.search; // carries ?token= on to status.json
  var cards = new Map();
  var windowSeconds = 300;

  function bytes(n) {
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + ' ' + units[i];
  }
  function rate(n) { return n === null || n === undefined ? '-' : bytes(n) + '/s'; }
  function ago(unix, nowSec) {
    if (!unix) return 'never';
    var s = Math.max(0, Math.round(nowSec - unix));
    return s < 120 ? s + ' s ago' : Math.round(s / 60) + ' min ago';
  }
  function el(tag, cls) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    return e;
  }
  function peak(values) {
    var m = 0;
    for (var i = 0; i < values.length; i++) if (values[i] !== null && values[i] > m) m = values[i];
    return m;
  }

  function card(key) {
    var c = cards.get(key);
    if (c) return c;
    var root = el('section', 'peer');
    root.dataset.key = key;
    var title = el('h2');
    var name = el('span', 'name');
    var state = el('span', 'state');
    title.append(name, state);
    var fields = el('dl');
    var chart = el('div', 'chart');
    root.append(title, fields, chart);
    document.getElementById('peers').append(root);
    var plot = new uPlot({
      width: Math.max(300, root.clientWidth - 32),
      height: 160,
      // The whole window the daemon keeps, filling from the right.
      scales: { x: { time: true, range: function (u, min, max) { return [max - windowSeconds, max]; } } },
      series: [
        {},
        { label: 'received', stroke: '#1a7f37', width: 1.5, value: function (u, v) { return rate(v); } },
        { label: 'sent', stroke: '#0969da', width: 1.5, value: function (u, v) { return rate(v); } }
      ],
      axes: [{}, { size: 96, values: function (u, vals) { return vals.map(rate); } }]
    }, [[], [], []], chart);
    c = { root: root, name: name, state: state, fields: fields, chart: chart, plot: plot };
    cards.set(key, c);
    return c;
  }

  function show(c, p, history, nowSec) {
    c.name.textContent = p.name || p.publicKey;
    var session = p.latestHandshake && nowSec - p.latestHandshake < 180;
    c.state.textContent = p.access && p.access !== 'active' ? p.access : session ? 'connected' : 'not connected';
    var rows = [
      ['public key', p.publicKey],
      ['endpoint', p.endpoint || '-'],
      ['address', p.address || '-'],
      ['latest handshake', ago(p.latestHandshake, nowSec)],
      ['transfer', bytes(p.rxBytes) + ' received, ' + bytes(p.txBytes) + ' sent'],
      ['control', p.control ? p.channel || '-' : 'none (stock WireGuard peer)']
    ];
    var series = history.peers[p.publicKey] || { rx: [], tx: [] };
    var peakRx = peak(series.rx);
    var peakTx = peak(series.tx);
    rows.push(['peak (' + Math.round(windowSeconds / 60) + ' min)', rate(peakRx) + ' received, ' + rate(peakTx) + ' sent']);
    c.fields.replaceChildren.apply(c.fields, rows.flatMap(function (r) {
      var dt = el('dt'); dt.textContent = r[0];
      var dd = el('dd'); dd.textContent = r[1];
      return [dt, dd];
    }));
    c.chart.dataset.peakRx = String(peakRx);
    c.chart.dataset.peakTx = String(peakTx);
    var times = history.times.slice(history.times.length - series.rx.length);
    c.plot.setData([times, series.rx, series.tx]);
  }

  function update(data) {
    var s = data.status;
    var nowSec = data.now;
    windowSeconds = data.history.intervalMs * data.history.samples / 1000;
    document.title = 'tvpn ' + s.interface + ' (' + s.role + ')';
    document.getElementById('title').textContent = 'tvpn ' + s.role + ' ' + s.interface;
    document.getElementById('summary').textContent =
      (s.address ? s.address + ', ' : '') + 'port ' + s.listenPort + ', public key ' + s.publicKey + ', ' + s.peers.length + ' peer(s)';
    var keys = new Set();
    s.peers.forEach(function (p) {
      keys.add(p.publicKey);
      show(card(p.publicKey), p, data.history, nowSec);
    });
    cards.forEach(function (c, key) {
      if (keys.has(key)) return;
      c.plot.destroy();
      c.root.remove();
      cards.delete(key);
    });
    document.getElementById('error').hidden = true;
  }

  function poll() {
    fetch('status.json' + query, { cache: 'no-store' })
      .then(function (r) {
        if (!r.ok) throw new Error('status.json: HTTP ' + r.status);
        return r.json();
      })
      .then(update)
      .catch(function (err) {
        var e = document.getElementById('error');
        e.textContent = String(err.message || err) + ' (retrying)';
        e.hidden = false;
      })
      .then(function () { setTimeout(poll, POLL_MS); });
  }
  poll();
})();
`;
