// The grid: one reused tooltip, collapsible task groups, clicks on cells. The cells
// themselves are drawn by the server (squares and SVG bars); live.js patches them.
"use strict";
(function () {
  function tooltipFor(table, tip) {
    const al = window.airloop;
    const shown = al.hoverTip(table, tip, "td.cell, th.run-head", (target) => {
      if (target.matches("th.run-head")) {
        const lines = [`run ${target.dataset.runId}`, `state: ${target.dataset.runState}`];
        if (target.dataset.logicalDate) lines.push(`logical date: ${target.dataset.logicalDate}`);
        lines.push(`type: ${target.dataset.runType}`);
        return lines;
      }
      const d = target.dataset;
      return [d.taskId, `run ${d.runId}`, d.state ? `state: ${d.state}` : al.stateText(d)];
    });
    // A live patch may change the cell under the pointer: hide rather than show stale text.
    document.addEventListener("airloop:cells", () => shown.hide());
  }

  function groups(table) {
    const dagId = table.dataset.dagId || "";
    const key = `airloop.collapsed.${dagId}`;
    let collapsed;
    try { collapsed = new Set(JSON.parse(localStorage.getItem(key) || "[]")); } catch (e) { collapsed = new Set(); }
    function apply() {
      for (const row of table.querySelectorAll("tbody tr[data-groups]")) {
        const held = (row.dataset.groups || "").split(" ").filter(Boolean);
        row.hidden = held.some((g) => collapsed.has(g));
      }
      for (const button of table.querySelectorAll("button.group-toggle")) {
        const closed = collapsed.has(button.dataset.groupId);
        button.setAttribute("aria-expanded", closed ? "false" : "true");
        button.textContent = closed ? "▸" : "▾";
      }
    }
    table.addEventListener("click", (event) => {
      const button = event.target.closest("button.group-toggle");
      if (!button) return;
      const id = button.dataset.groupId;
      if (collapsed.has(id)) collapsed.delete(id); else collapsed.add(id);
      try { localStorage.setItem(key, JSON.stringify([...collapsed])); } catch (e) { /* private mode */ }
      apply();
    });
    apply();
  }

  function clicks(table) {
    table.addEventListener("click", (event) => {
      if (event.target.closest("a, button")) return;
      const link = event.target.closest("td.cell") && event.target.closest("td.cell").querySelector("a[href]");
      if (link) window.location.href = link.href;
    });
  }

  function start() {
    const tip = document.getElementById("grid-tooltip");
    for (const table of document.querySelectorAll("#grid")) {
      if (tip) tooltipFor(table, tip);
      clicks(table);
      groups(table);
      table.dataset.drawn = "";  // the grid is ready (benchmarks wait for this)
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
