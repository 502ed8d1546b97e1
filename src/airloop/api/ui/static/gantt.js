// The run page's Gantt chart: the bars are drawn by the server (percent of the run's
// span); this adds one reused tooltip with a row's times and live state patches come
// from live.js.
"use strict";
(function () {
  function fmt(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  function start() {
    const table = document.getElementById("gantt");
    const tip = document.getElementById("grid-tooltip");
    if (!table || !tip) return;
    window.airloop.hoverTip(table, tip, "tr.ti-row", (row) => {
      const cell = row.querySelector("td.cell");
      return [
        row.dataset.taskRow,
        `state: ${(cell && window.airloop.stateText(cell.dataset)) || "–"}`,
        `queued: ${fmt(row.dataset.queuedAt)}`,
        `started: ${fmt(row.dataset.startDate)}`,
        `ended: ${fmt(row.dataset.endDate)}`,
      ];
    });
    table.addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      const row = event.target.closest("tr.ti-row");
      const cell = row && row.querySelector("td.cell[data-href]");
      if (cell) window.location.href = cell.dataset.href;
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
