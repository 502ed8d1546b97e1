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
    function highlight(taskId, on) {
      for (const edge of svg.querySelectorAll("g.edge")) {
        if (edge.dataset.source === taskId || edge.dataset.target === taskId) edge.classList.toggle("hot", on);
      }
    }
    window.airloop.hoverTip(
      svg, tip, "g.node",
      (node) => [node.dataset.taskId, `state: ${window.airloop.stateText(node.dataset)}`],
      {
        onEnter: (node) => highlight(node.dataset.taskId, true),
        onLeave: (node) => highlight(node.dataset.taskId, false),
      },
    );
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
