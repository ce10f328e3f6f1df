/* Charts of the Relais dashboard, drawn with Chart.js from the figures embedded in the page. */
(function () {
  "use strict";

  var COLOURS = {
    breached: "#e15759",
    at_risk: "#f28e2b",
    on_track: "#59a14f",
    suspended: "#9c9c9c",
    waiting: "#bab0ac",
    legal_breached: "#8b1e3f",
    open: "#4e79a7"
  };
  var LABELS = {
    breached: "En dépassement",
    at_risk: "À risque",
    on_track: "Dans les délais",
    suspended: "Suspendus",
    waiting: "En attente",
    legal_breached: "Délai légal dépassé",
    open: "Dossiers ouverts"
  };

  var source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  var figures = JSON.parse(source.textContent);
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#3e4956";

  /* A text alternative for screen readers: "label: n series, ..." per bar. */
  function summary(block, keys) {
    return block.labels.map(function (label, index) {
      var parts = keys.map(function (key) {
        return block.series[key][index] + " " + LABELS[key].toLowerCase();
      });
      return label + " : " + parts.join(", ");
    }).join(" ; ");
  }

  function draw(id, block, keys, horizontal, stacked) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return;
    }
    if (horizontal) {
      /* One bar per row: give each row room instead of squeezing them. */
      var perRow = stacked ? 36 : 18 * keys.length + 14;
      canvas.parentElement.style.height = Math.max(280, perRow * block.labels.length + 90) + "px";
    }
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: block.labels,
        datasets: keys.map(function (key) {
          return {
            label: LABELS[key],
            data: block.series[key],
            backgroundColor: COLOURS[key],
            borderWidth: 0,
            borderRadius: 3,
            maxBarThickness: 30
          };
        })
      },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: stacked, beginAtZero: true, ticks: { precision: 0 }, grid: { color: "#eceff3" } },
          y: { stacked: stacked, beginAtZero: true, ticks: { precision: 0 }, grid: { color: "#eceff3" } }
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 14 } },
          tooltip: { mode: "index", intersect: false }
        }
      }
    });
    canvas.setAttribute("aria-label", summary(block, keys));
    canvas.setAttribute("data-drawn", "true");
  }

  /* Each open item is in exactly one of these: the bars add up to the stock. */
  draw("chart-holders", figures.holders, ["breached", "at_risk", "on_track", "suspended", "waiting"], true, true);
  /* An item can be both breached and past its legal deadline: side by side, not stacked. */
  draw("chart-sies", figures.sies, ["breached", "at_risk", "legal_breached"], true, false);
  draw("chart-ages", figures.ages, ["open"], false, false);
})();
