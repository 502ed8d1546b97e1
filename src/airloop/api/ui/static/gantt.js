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
    let current = null;
    function move(event) {
      const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      const y = Math.min(event.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
      tip.style.left = `${x + window.scrollX}px`;
      tip.style.top = `${y + window.scrollY}px`;
    }
    table.addEventListener("mouseover", (event) => {
      const row = event.target.closest("tr.ti-row");
      if (row === current) return;
      current = row;
      if (!row) { tip.hidden = true; return; }
      const cell = row.querySelector("td.cell");
      const state = cell && (cell.dataset.state || `${cell.dataset.total} instances: ${cell.dataset.summary}`);
      tip.textContent = [
        row.dataset.taskRow,
        `state: ${state || "–"}`,
        `queued: ${fmt(row.dataset.queuedAt)}`,
        `started: ${fmt(row.dataset.startDate)}`,
        `ended: ${fmt(row.dataset.endDate)}`,
      ].join("\n");
      tip.hidden = false;
      move(event);
    });
    table.addEventListener("mousemove", (event) => { if (current) move(event); });
    table.addEventListener("mouseleave", () => { current = null; tip.hidden = true; });
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
