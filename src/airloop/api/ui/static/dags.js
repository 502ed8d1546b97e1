// The DAG list: pause toggles (admin) and live last-run states from /ui/stream/dags.
"use strict";
(() => {
  const table = document.getElementById("dag-list");
  if (!table) return;
  const al = window.airloop;

  table.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button.pause-toggle");
    if (!button) return;
    const row = button.closest("tr[data-dag-id]");
    const dagId = row.dataset.dagId;
    const pause = button.getAttribute("aria-pressed") !== "true";
    button.disabled = true;
    try {
      const dag = await al.api("PATCH", `/api/v1/dags/${encodeURIComponent(dagId)}`, { is_paused: pause });
      const paused = dag ? dag.is_paused : pause;
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      button.textContent = paused ? "Unpause" : "Pause";
      row.dataset.paused = paused ? "true" : "false";
      al.flash(`${dagId} ${paused ? "paused" : "unpaused"}`);
    } catch (err) {
      al.flash(`Could not ${pause ? "pause" : "unpause"} ${dagId}: ${err.message}`, "error");
    } finally {
      button.disabled = false;
    }
  });

  function circle(dagId, run) {
    const a = document.createElement("a");
    a.className = "run-circle";
    al.setState(a, run.state);
    a.dataset.runId = run.run_id;
    a.href = `/dags/${encodeURIComponent(dagId)}/runs/${encodeURIComponent(run.run_id)}`;
    a.title = `${run.run_id}: ${run.state}` + (run.logical_date ? ` (${al.formatDate(run.logical_date)})` : "");
    return a;
  }

  function update(dag) {
    const row = table.querySelector(`tr[data-dag-id="${CSS.escape(dag.dag_id)}"]`);
    if (!row) return;
    const cell = row.querySelector("td.last-runs");
    cell.replaceChildren(...[...dag.last_runs].reverse().map((r) => circle(dag.dag_id, r)));
  }

  const ids = [...table.querySelectorAll("tr[data-dag-id]")].map((r) => r.dataset.dagId);
  if (!ids.length) return;
  const url = `/ui/stream/dags?dag_ids=${encodeURIComponent(ids.join(","))}`;
  if (window.EventSource) {
    const source = new EventSource(url);
    source.addEventListener("dags", (ev) => {
      for (const dag of JSON.parse(ev.data).dags) update(dag);
    });
    window.addEventListener("pagehide", () => source.close());
  }
})();
