// Admin buttons of the DAG and run pages, through the write API (airloop.api sends
// the CSRF token): pause toggle, clear / mark a run, edit the run's note.
"use strict";
(function () {
  const enc = encodeURIComponent;

  function fail(error) {
    const box = document.getElementById("action-error");
    const message = error && error.message ? error.message : String(error);
    if (window.airloop && window.airloop.flash) window.airloop.flash(message, "error");
    else if (box) { box.textContent = message; box.hidden = false; }
  }

  function note(message) {
    if (window.airloop && window.airloop.flash) window.airloop.flash(message, "info");
  }

  async function act(button, work) {
    button.disabled = true;
    try { await work(); } catch (error) { fail(error); } finally { button.disabled = false; }
  }

  function runPath(button) {
    return `/api/v1/dags/${enc(button.dataset.dagId)}/dagRuns/${enc(button.dataset.runId)}`;
  }

  function bind(selector, handler) {
    for (const el of document.querySelectorAll(selector)) {
      el.addEventListener("click", (event) => {
        event.preventDefault();
        event.stopPropagation();  // a page-wide handler (airloop.js) must not act twice
        handler(el);
      });
    }
  }

  function start() {
    bind("#dag-header button.pause-toggle", (button) => act(button, async () => {
      const paused = button.dataset.paused === "true";
      const dag = await window.airloop.api("PATCH", `/api/v1/dags/${enc(button.dataset.dagId)}`, { is_paused: !paused });
      const now = dag && typeof dag.is_paused === "boolean" ? dag.is_paused : !paused;
      button.dataset.paused = String(now);
      button.textContent = now ? "Unpause" : "Pause";
      const badge = document.getElementById("dag-paused-badge");
      if (badge) { badge.textContent = now ? "paused" : "active"; badge.className = `badge ${now ? "paused" : "active"}`; }
    }));
    bind("button.clear-run", (button) => act(button, async () => {
      if (!window.confirm(`Clear every task instance of run ${button.dataset.runId}? They run again.`)) return;
      await window.airloop.api("POST", `${runPath(button)}/clear`, { only_failed: false, dry_run: false });
      window.location.reload();
    }));
    for (const state of ["success", "failed"]) {
      bind(`button.mark-run-${state}`, (button) => act(button, async () => {
        const answer = await window.airloop.api("PATCH", runPath(button), { state });
        if (answer && answer.request) {
          // A run in flight: the scheduler stops it, then marks it (202); the live
          // stream shows the change when it is made.
          note(`Asked the scheduler to mark run ${button.dataset.runId} ${state}.`);
        } else {
          window.location.reload();
        }
      }));
    }
    const form = document.getElementById("note-form");
    if (form) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const button = form.querySelector("button[type=submit]");
        act(button, async () => {
          await window.airloop.api("PATCH", `${runPath(form)}/note`, { note: form.elements.note.value });
          button.textContent = "Saved";
          window.setTimeout(() => { button.textContent = "Save note"; }, 1500);
        });
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
