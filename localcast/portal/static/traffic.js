// The traffic page's charts: each <script type="application/json" id="chart-data-NAME"> holds
// one chart's table (columns, rows: the same as its CSV) and how to draw it; Chart.js draws it
// on <canvas id="chart-NAME">. Without JavaScript the data tables under each chart remain.
(function () {
  "use strict";
  if (typeof Chart === "undefined") return;
  // Okabe-Ito: told apart by most colour-blind readers; the legend names every series.
  var COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000"];
  var UNITS = [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3], ["B", 1]];
  var still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function column(spec, key) {
    var i = spec.columns.indexOf(key);
    return spec.rows.map(function (r) { return i < 0 ? null : r[i]; });
  }

  function dates(spec) {
    var seen = [];
    column(spec, spec.x).forEach(function (d) { if (seen.indexOf(d) < 0) seen.push(d); });
    return seen;
  }

  function datasets(spec) {
    if (spec.group) { // long format: one line per group value (e.g. per site)
      var key = spec.series[0].key, gi = spec.columns.indexOf(spec.group);
      var xi = spec.columns.indexOf(spec.x), vi = spec.columns.indexOf(key);
      var labels = dates(spec), groups = [];
      spec.rows.forEach(function (r) { if (groups.indexOf(r[gi]) < 0) groups.push(r[gi]); });
      return groups.map(function (g) {
        var values = labels.map(function (d) {
          var row = spec.rows.find(function (r) { return r[gi] === g && r[xi] === d; });
          return row ? row[vi] : null;
        });
        return { label: g, data: values };
      });
    }
    return spec.series.map(function (s) {
      var ds = { label: s.label, data: column(spec, s.key) };
      if (spec.name === "misses" && s.key === "sessions") { // the total, drawn as a line
        ds.type = "line";
        ds.stack = "total";
      } else if (spec.stacked) {
        ds.stack = "parts";
      }
      return ds;
    });
  }

  function scaleOf(spec, sets) {
    if (spec.unit === "ratio") return { factor: 100, label: "%" };
    if (spec.unit === "count") return { factor: 1, label: "sessions" };
    var top = 0;
    var n = sets.length ? sets[0].data.length : 0;
    for (var i = 0; i < n; i++) {
      var sum = 0;
      sets.forEach(function (s) {
        var v = s.data[i] || 0;
        if (spec.stacked) sum += v; else top = Math.max(top, v);
      });
      top = Math.max(top, sum);
    }
    for (var u = 0; u < UNITS.length; u++) {
      if (top >= UNITS[u][1]) return { factor: 1 / UNITS[u][1], label: UNITS[u][0] };
    }
    return { factor: 1, label: "B" };
  }

  function draw(el) {
    var spec = JSON.parse(el.textContent);
    var canvas = document.getElementById("chart-" + spec.name);
    if (!canvas) return;
    var sets = datasets(spec);
    var unit = scaleOf(spec, sets);
    sets.forEach(function (s, i) {
      var c = COLOURS[i % COLOURS.length];
      s.data = s.data.map(function (v) { return v === null ? null : v * unit.factor; });
      s.backgroundColor = c;
      s.borderColor = c;
      s.borderWidth = s.type === "line" || spec.kind === "line" ? 2 : 0;
      s.spanGaps = false;
    });
    var ratio = spec.unit === "ratio";
    new Chart(canvas, {
      type: spec.kind,
      data: { labels: dates(spec), datasets: sets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: still ? false : undefined,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: spec.stacked },
          y: {
            stacked: spec.stacked,
            beginAtZero: true,
            suggestedMax: ratio ? 100 : undefined,
            max: ratio ? 100 : undefined,
            title: { display: true, text: unit.label },
            ticks: spec.unit === "count" ? { precision: 0 } : {}
          }
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                var v = ctx.parsed.y;
                if (v === null || v === undefined) return ctx.dataset.label + ": no data";
                var text = ratio ? v.toFixed(1) + "%" :
                  spec.unit === "count" ? v.toLocaleString() : v.toFixed(2) + " " + unit.label;
                return ctx.dataset.label + ": " + text;
              }
            }
          }
        }
      }
    });
  }

  document.querySelectorAll('script[type="application/json"][id^="chart-data-"]')
    .forEach(function (el) {
      try { draw(el); } catch (err) { console.error("chart " + el.id + ":", err); }
    });
})();
