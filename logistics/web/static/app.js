/* Presentation only: htmx settings, the scanner field, and drawing the charts with uPlot.
   No business rule lives here: every number comes from the server. */
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    if (window.htmx) {
      // A refused form (422) comes back with its errors next to its fields: show it.
      htmx.config.responseHandling = [
        { code: "204", swap: false },
        { code: "[23]..", swap: true },
        { code: "422", swap: true, error: false },
        { code: "[45]..", swap: false, error: true }
      ];
    }
    drawCharts(document);
  });
  document.addEventListener("htmx:afterSwap", function (event) { drawCharts(event.target); });

  // A barcode scanner types the GS1 string and then Enter: move on instead of submitting.
  document.addEventListener("keydown", function (event) {
    var next = event.target && event.target.getAttribute && event.target.getAttribute("data-scan-next");
    if (event.key === "Enter" && next) {
      event.preventDefault();
      var field = document.getElementById(next);
      if (field) { field.focus(); }
    }
  });

  function shade(u, from, to, colour) {
    var ctx = u.ctx, left = u.valToPos(from, "x", true), right = u.valToPos(to, "x", true);
    ctx.save();
    ctx.fillStyle = colour;
    ctx.fillRect(left, u.bbox.top, Math.max(right - left, 2), u.bbox.height);
    ctx.restore();
  }

  function band(u, low, high) {
    var ctx = u.ctx, top = u.valToPos(high, "y", true), bottom = u.valToPos(low, "y", true);
    ctx.save();
    ctx.fillStyle = "rgba(23, 102, 58, 0.14)";
    ctx.fillRect(u.bbox.left, top, u.bbox.width, bottom - top);
    ctx.strokeStyle = "rgba(23, 102, 58, 0.7)";
    ctx.setLineDash([4, 4]);
    ctx.strokeRect(u.bbox.left, top, u.bbox.width, bottom - top);
    ctx.restore();
  }

  // Keep a chart as wide as its holder (the canvas is drawn in pixels): also when the holder is
  // sized after the chart was drawn, which the window's resize event does not tell.
  function follow(holder, plot, height) {
    var fit = function () {
      var w = Math.max(holder.clientWidth, 300);
      if (w !== plot.width) { plot.setSize({ width: w, height: height }); }
    };
    if (window.ResizeObserver) { new ResizeObserver(fit).observe(holder); }
    else { window.addEventListener("resize", fit); }
  }

  // Shared with the other charts' scripts (journey.js), which look it up when they draw.
  window.coldchainCharts = { shade: shade, band: band, follow: follow };

  function drawCharts(root) {
    if (!window.uPlot) { return; }
    var holders = (root.querySelectorAll ? root : document).querySelectorAll("[data-chart]");
    holders.forEach(function (holder) {
      var source = document.getElementById(holder.getAttribute("data-chart"));
      if (!source || holder.getAttribute("data-drawn")) { return; }
      holder.setAttribute("data-drawn", "1");
      var d = JSON.parse(source.textContent);
      var wide = d.bucket_s > 60;
      var lows = d.min.concat([d.band[0] - 2]), highs = d.max.concat([d.band[1] + 2]);
      var yMin = Math.min.apply(null, lows), yMax = Math.max.apply(null, highs);
      var series = [{}, { label: holder.getAttribute("data-label-avg"), stroke: "#0b5cad", width: 2 }];
      var data = [d.t, d.avg];
      if (wide) {
        series.push({ label: holder.getAttribute("data-label-min"), stroke: "#5a8fc8", width: 1, dash: [3, 3] });
        series.push({ label: holder.getAttribute("data-label-max"), stroke: "#c0392b", width: 1, dash: [3, 3] });
        data.push(d.min, d.max);
      }
      var opts = {
        width: Math.max(holder.clientWidth, 300), height: 260,
        tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), d.tz); },
        scales: { x: { min: d.start, max: d.end }, y: { range: [Math.floor(yMin), Math.ceil(yMax)] } },
        series: series,
        axes: [{}, { label: "°C" }],
        hooks: { drawClear: [function (u) {
          band(u, d.band[0], d.band[1]);
          d.excursions.forEach(function (x) { shade(u, x[0], x[1], "rgba(163, 22, 27, 0.22)"); });
        }] }
      };
      follow(holder, new uPlot(opts, data, holder), 260);
    });
  }
})();
