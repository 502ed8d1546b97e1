// The graph tab: the layout and SVG come from the server; this adds one reused
// tooltip per node, switches runs when the selector changes and highlights a task's
// edges on hover. States are patched live by live.js.
"use strict";
(function () {
  function start() {
    const svg = document.getElementById("graph");
    const tip = document.getElementById("graph-tooltip");
    const select = document.getElementById("graph-run-select");
    if (select) select.addEventListener("change", () => select.form.submit());
    if (!svg || !tip) return;
    let current = null;
    function move(event) {
      const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      const y = Math.min(event.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
      tip.style.left = `${x + window.scrollX}px`;
      tip.style.top = `${y + window.scrollY}px`;
    }
    function highlight(taskId, on) {
      for (const edge of svg.querySelectorAll("g.edge")) {
        if (edge.dataset.source === taskId || edge.dataset.target === taskId) edge.classList.toggle("hot", on);
      }
    }
    svg.addEventListener("mouseover", (event) => {
      const node = event.target.closest("g.node");
      if (node === current) return;
      if (current) highlight(current.dataset.taskId, false);
      current = node;
      if (!node) { tip.hidden = true; return; }
      highlight(node.dataset.taskId, true);
      const state = node.dataset.state || `${node.dataset.total || 0} instances: ${node.dataset.summary || ""}`;
      tip.textContent = `${node.dataset.taskId}\nstate: ${state}`;
      tip.hidden = false;
      move(event);
    });
    svg.addEventListener("mousemove", (event) => { if (current) move(event); });
    svg.addEventListener("mouseleave", () => {
      if (current) highlight(current.dataset.taskId, false);
      current = null;
      tip.hidden = true;
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
