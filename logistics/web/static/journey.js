/* A lot's journey on one chart (issue 18): one line per stay or trip, trips shaded blue,
   excursions red, the product's safe range green. Data: <script type="application/json">. */
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#8e44ad", "#17663a", "#b35900", "#2c3e50", "#c0392b"];

  function draw(holder) {
    // The band, the shading and the resizing are app.js's (window.coldchainCharts).
    var charts = window.coldchainCharts;
    var source = document.getElementById(holder.getAttribute("data-journey"));
    if (!window.uPlot || !charts || !source || holder.getAttribute("data-drawn")) { return; }
    holder.setAttribute("data-drawn", "1");
    var d = JSON.parse(source.textContent);
    var series = [{}], data = [d.t];
    d.legs.forEach(function (leg, i) {
      series.push({ label: leg.label, stroke: COLOURS[i % COLOURS.length],
                    width: leg.kind === "trip" ? 3 : 2, dash: leg.kind === "trip" ? [6, 3] : undefined,
                    spanGaps: false });
      data.push(d.series[i]);
    });
    var values = [].concat.apply([d.band[0] - 2, d.band[1] + 2], d.series).filter(function (v) {
      return v !== null;
    });
    var opts = {
      width: Math.max(holder.clientWidth, 300), height: 280,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), d.tz); },
      scales: { x: { min: d.start, max: d.end },
                y: { range: [Math.floor(Math.min.apply(null, values)), Math.ceil(Math.max.apply(null, values))] } },
      series: series,
      axes: [{}, { label: "°C" }],
      hooks: { drawClear: [function (u) {
        charts.band(u, d.band[0], d.band[1]);
        d.trips.forEach(function (x) { charts.shade(u, x[0], x[1], "rgba(11, 92, 173, 0.12)"); });
        d.excursions.forEach(function (x) { charts.shade(u, x[0], x[1], "rgba(163, 22, 27, 0.22)"); });
      }] }
    };
    charts.follow(holder, new uPlot(opts, data, holder), 280);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-journey]").forEach(draw);
  });
})();
