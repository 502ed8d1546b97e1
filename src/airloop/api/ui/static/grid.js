// The grid: one reused tooltip, collapsible task groups, clicks on cells. The cells
// themselves are drawn by the server (squares and SVG bars); live.js patches them.
"use strict";
(function () {
  function tooltipFor(table, tip) {
    let current = null;
    function show(target, event) {
      const lines = [];
      if (target.matches("th.run-head")) {
        lines.push(`run ${target.dataset.runId}`, `state: ${target.dataset.runState}`);
        if (target.dataset.logicalDate) lines.push(`logical date: ${target.dataset.logicalDate}`);
        lines.push(`type: ${target.dataset.runType}`);
      } else {
        lines.push(target.dataset.taskId, `run ${target.dataset.runId}`);
        if (target.dataset.state) lines.push(`state: ${target.dataset.state}`);
        else lines.push(`${target.dataset.total || 0} instances: ${target.dataset.summary || ""}`);
      }
      tip.textContent = lines.join("\n");
      tip.hidden = false;
      move(event);
    }
    function move(event) {
      const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      const y = Math.min(event.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
      tip.style.left = `${x + window.scrollX}px`;
      tip.style.top = `${y + window.scrollY}px`;
    }
    table.addEventListener("mouseover", (event) => {
      const target = event.target.closest("td.cell, th.run-head");
      if (target === current) return;
      current = target;
      if (!target) { tip.hidden = true; return; }
      show(target, event);
    });
    table.addEventListener("mousemove", (event) => { if (current) move(event); });
    table.addEventListener("mouseleave", () => { current = null; tip.hidden = true; });
    document.addEventListener("airloop:cells", () => { if (current) { tip.hidden = true; current = null; } });
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
