// Live updates for the grid, graph and run pages: one EventSource per page (the URL is
// the data-stream attribute of #grid, #graph or #gantt); each "cells" event patches the
// changed cells and run states in place. No framework, no inline script (CSP).
"use strict";
(function () {
  const STATE_ORDER = ["success", "failed", "upstream_failed", "skipped", "removed",
    "up_for_retry", "running", "queued", "scheduled", "none"];
  const SVG = "http://www.w3.org/2000/svg";

  function ordered(counts) {
    const known = STATE_ORDER.filter((s) => counts[s]);
    const other = Object.keys(counts).filter((s) => !STATE_ORDER.includes(s) && counts[s]).sort();
    return known.concat(other);
  }

  function summary(counts) {
    const parts = ordered(counts).filter((s) => STATE_ORDER.includes(s)).map((s) => `${s} ${counts[s]}`);
    return parts.length ? parts.join(", ") : "no instances";
  }

  function bar(counts, total) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "bar");
    svg.setAttribute("viewBox", "0 0 100 10");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("aria-hidden", "true");
    let x = 0;
    for (const state of ordered(counts)) {
      const width = (100 * counts[state]) / total;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("class", "seg");
      rect.setAttribute("data-state", state);
      rect.setAttribute("data-count", String(counts[state]));
      rect.setAttribute("x", x.toFixed(3));
      rect.setAttribute("y", "0");
      rect.setAttribute("width", width.toFixed(3));
      rect.setAttribute("height", "10");
      svg.appendChild(rect);
      x += width;
    }
    return svg;
  }

  function isMapped(el, cell) {
    if (el.classList.contains("mapped")) return true;
    const row = el.closest("tr");
    return (row && row.classList.contains("mapped")) || cell.total > 1;
  }

  function patchCell(el, cell) {
    const mapped = isMapped(el, cell);
    const text = summary(cell.counts);
    el.setAttribute("data-total", String(cell.total));
    el.setAttribute("data-summary", text);
    const states = Object.keys(cell.counts).filter((s) => cell.counts[s]);
    if (mapped) {
      el.removeAttribute("data-state");
      el.classList.add("mapped");
    } else if (states.length === 1) {
      el.setAttribute("data-state", states[0]);
    }
    if (el.tagName.toLowerCase() === "g") {  // a graph node
      const counts = el.querySelector(".counts");
      if (counts) counts.textContent = `[${cell.total}]`;
      return;
    }
    const label = el.querySelector(".label");
    if (label) {  // the run page's state column
      label.textContent = mapped ? text : states[0] || "";
      return;
    }
    const link = el.querySelector("a") || el;
    if (mapped) {
      const old = link.querySelector("svg.bar");
      const fresh = bar(cell.counts, cell.total || 1);
      if (old) old.replaceWith(fresh); else { link.textContent = ""; link.appendChild(fresh); }
    } else if (!link.querySelector(".sq")) {
      const sq = document.createElement("span");
      sq.className = "sq";
      link.textContent = "";
      link.appendChild(sq);
    }
  }

  function patchRun(run) {
    const id = CSS.escape(run.run_id);
    for (const el of document.querySelectorAll(`[data-run-state-for="${id}"]`)) {
      el.setAttribute("data-state", run.state);
      el.textContent = run.state;
    }
    for (const el of document.querySelectorAll(`th.run-head[data-run-id="${id}"]`)) {
      el.setAttribute("data-run-state", run.state);
    }
    const end = document.getElementById("run-end");
    const header = document.getElementById("run-header");
    if (end && header && header.dataset.runId === run.run_id) {
      end.setAttribute("datetime", run.end_date || "");
      end.textContent = window.airloop && window.airloop.formatDate ? window.airloop.formatDate(run.end_date) : (run.end_date || "");
    }
  }

  function apply(data) {
    const fresh = document.getElementById("new-runs");
    if (fresh && typeof data.newer_runs === "number") {
      fresh.hidden = data.newer_runs === 0;
      fresh.textContent = `${data.newer_runs} new run${data.newer_runs === 1 ? "" : "s"}: show`;
    }
    for (const run of data.runs || []) patchRun(run);
    for (const cell of data.cells || []) {
      const sel = `[data-run-id="${CSS.escape(cell.run_id)}"][data-task-id="${CSS.escape(cell.task_id)}"]`;
      for (const el of document.querySelectorAll(sel)) patchCell(el, cell);
    }
  }

  function start() {
    const host = document.querySelector("#grid[data-stream], #graph[data-stream], #gantt[data-stream]");
    if (!host || !window.EventSource) return;
    const status = document.getElementById("live-status");
    const source = new EventSource(host.getAttribute("data-stream"));
    source.addEventListener("cells", (event) => {
      apply(JSON.parse(event.data));
      document.dispatchEvent(new CustomEvent("airloop:cells", { detail: JSON.parse(event.data) }));
    });
    source.addEventListener("open", () => { if (status) { status.textContent = "live"; status.dataset.live = "on"; } });
    source.addEventListener("error", () => { if (status) { status.textContent = "reconnecting…"; status.dataset.live = "off"; } });
    window.addEventListener("pagehide", () => source.close());
    window.airloopLive = { source, apply };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
