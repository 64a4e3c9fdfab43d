/* Draws the console's Analytics charts from the figures the page carries in
   <script id="analytics-data" type="application/json"> (no inline script, no CDN:
   Chart.js is our own static copy). Charts are redrawn when the admin theme changes, so
   axis and legend colours always read on the background. */
(function () {
  "use strict";

  const SERIES = ["#6366f1", "#14b8a6", "#f59e0b", "#f43f5e", "#8b5cf6", "#0ea5e9"];
  const charts = [];

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function percent(value) {
    return value === null || value === undefined ? null : Math.round(value * 1000) / 10;
  }

  function baseOptions(yTitle, extra) {
    const text = cssVar("--body-quiet-color", "#666");
    const grid = cssVar("--hairline-color", "#e5e5e5");
    return Object.assign({
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { labels: { color: text, boxWidth: 12 } } },
      scales: {
        x: { ticks: { color: text, maxRotation: 0, autoSkipPadding: 12 }, grid: { color: grid } },
        y: {
          beginAtZero: true,
          ticks: { color: text },
          grid: { color: grid },
          title: { display: Boolean(yTitle), text: yTitle, color: text },
        },
      },
    }, extra || {});
  }

  function line(label, data, color, dashed) {
    return {
      label: label, data: data, borderColor: color, backgroundColor: color,
      borderWidth: 2, pointRadius: 0, tension: 0.25, spanGaps: true,
      borderDash: dashed ? [6, 4] : [],
    };
  }

  function draw(summary) {
    const days = summary.daily.map(function (d) { return d.date.slice(5); });
    const col = function (key) { return summary.daily.map(function (d) { return d[key]; }); };

    charts.push(new Chart(document.getElementById("chart-volume"), {
      type: "bar",
      data: {
        labels: days,
        datasets: [
          Object.assign(line("Messages", col("messages"), SERIES[1]), { type: "line" }),
          { label: "Conversations", data: col("conversations"), backgroundColor: SERIES[0] },
        ],
      },
      options: baseOptions("per day"),
    }));

    const quality = baseOptions("%");
    quality.scales.y.max = 100;
    charts.push(new Chart(document.getElementById("chart-quality"), {
      type: "line",
      data: {
        labels: days,
        datasets: [
          line("Answered rate", summary.daily.map(function (d) { return percent(d.answered_rate); }), SERIES[1]),
          line("Thumbs-up ratio", summary.daily.map(function (d) { return percent(d.thumbs_up_ratio); }), SERIES[2]),
        ],
      },
      options: quality,
    }));

    charts.push(new Chart(document.getElementById("chart-latency"), {
      type: "line",
      data: {
        labels: days,
        datasets: [
          line("Latency p50", col("latency_p50"), SERIES[0]),
          line("Latency p95", col("latency_p95"), SERIES[0], true),
          line("First token p50", col("ttft_p50"), SERIES[3]),
          line("First token p95", col("ttft_p95"), SERIES[3], true),
        ],
      },
      options: baseOptions("ms"),
    }));

    const models = summary.models;
    const tokens = baseOptions("tokens", { indexAxis: "y" });
    tokens.scales.x.stacked = tokens.scales.y.stacked = true;
    tokens.scales.y.title.display = false;
    tokens.plugins.tooltip = {
      callbacks: {
        footer: function (items) {
          const row = models[items[0].dataIndex];
          return row.price === "list" ? "Estimated cost: $" + row.cost_usd.toFixed(2) : "Price unknown";
        },
      },
    };
    charts.push(new Chart(document.getElementById("chart-tokens"), {
      type: "bar",
      data: {
        labels: models.map(function (m) { return (m.provider || "—") + " · " + (m.model || "—"); }),
        datasets: [
          { label: "Tokens in", data: models.map(function (m) { return m.tokens_in; }), backgroundColor: SERIES[4] },
          { label: "Tokens out", data: models.map(function (m) { return m.tokens_out; }), backgroundColor: SERIES[5] },
        ],
      },
      options: tokens,
    }));
  }

  function redraw(summary) {
    while (charts.length) { charts.pop().destroy(); }
    draw(summary);
  }

  function start() {
    const source = document.getElementById("analytics-data");
    if (!source || typeof Chart === "undefined") { return; }
    const summary = JSON.parse(source.textContent);
    draw(summary);
    // The admin's theme toggle sets data-theme on <html>; "auto" follows the system.
    new MutationObserver(function () { redraw(summary); })
      .observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    window.matchMedia("(prefers-color-scheme: dark)")
      .addEventListener("change", function () { redraw(summary); });
  }

  document.addEventListener("DOMContentLoaded", start);
}());
