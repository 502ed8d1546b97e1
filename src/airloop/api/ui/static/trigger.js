// The trigger form: builds conf from one input per param, posts it, shows the API's
// per-param messages next to their inputs, and opens the new run's page.
"use strict";
(() => {
  const form = document.getElementById("trigger-form");
  if (!form) return;
  const al = window.airloop;
  const dagId = form.dataset.dagId;
  const general = document.getElementById("trigger-error");

  // "2026-12-02T04:30" (datetime-local, read as UTC) -> "2026-12-02T04:30:00+00:00"
  const utc = (local) => (local.length === 16 ? `${local}:00` : local) + "+00:00";

  function showError(name, message) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (!slot) return false;
    slot.textContent = message;
    slot.hidden = false;
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) input.classList.add("invalid");
    return true;
  }

  function clearErrors() {
    for (const slot of form.querySelectorAll("[data-error-for]")) { slot.hidden = true; slot.textContent = ""; }
    for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
    general.hidden = true;
  }

  // {param: value} from the inputs; fills `problems` with client-side parse errors.
  function collect(problems) {
    const conf = {};
    for (const field of form.querySelectorAll(".field[data-param]")) {
      const name = field.dataset.param;
      const kind = field.dataset.kind;
      const nullable = field.dataset.nullable === "true";
      const input = field.querySelector(`[name="${CSS.escape(name)}"]`);
      if (kind === "boolean") { conf[name] = input.checked; continue; }
      const raw = input.value;
      if (raw.trim() === "") {
        if (nullable) conf[name] = null;
        continue;  // omitted: the API uses the default or says it is required
      }
      if (kind === "integer" || kind === "number") {
        const n = Number(raw);
        if (!Number.isFinite(n) || (kind === "integer" && !Number.isInteger(n))) {
          problems[name] = `${raw} is not ${kind === "integer" ? "an integer" : "a number"}`;
        } else conf[name] = n;
      } else if (kind === "json" || kind === "enum") {
        try { conf[name] = JSON.parse(raw); } catch (e) { problems[name] = `not valid JSON: ${e.message}`; }
      } else if (kind === "datetime") {
        conf[name] = utc(raw);
      } else {
        conf[name] = raw;
      }
    }
    return conf;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    const problems = {};
    const body = { conf: collect(problems) };
    const runId = form.elements._run_id.value.trim();
    const logical = form.elements._logical_date.value;
    const note = form.elements._note.value.trim();
    if (runId) body.run_id = runId;
    if (logical) body.logical_date = utc(logical);
    if (note) body.note = note;
    if (Object.keys(problems).length) {
      for (const [name, message] of Object.entries(problems)) showError(name, message);
      return;
    }
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      const run = await al.api("POST", `/api/v1/dags/${encodeURIComponent(dagId)}/dagRuns`, body);
      window.location.assign(`/dags/${encodeURIComponent(dagId)}/runs/${encodeURIComponent(run.run_id)}`);
    } catch (err) {
      const errors = (err.data && err.data.errors) || {};
      let placed = 0;
      for (const [name, message] of Object.entries(errors)) if (showError(name, message)) placed += 1;
      if (placed < Object.keys(errors).length || !placed) {
        general.textContent = err.message;
        general.hidden = false;
      }
      submit.disabled = false;
    }
  });
})();
