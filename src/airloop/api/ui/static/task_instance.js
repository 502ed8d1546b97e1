// The task instance page: tabs, the log (tail first, earlier by offset, live follow by
// server-sent events, capped at LOG_CAP characters in the page) and the admin actions.
"use strict";
(() => {
  const al = window.airloop;
  const data = al.json("ti-data");
  if (!data) return;
  const LOG_CAP = 2 * 1024 * 1024;
  const CHUNK = 65536;
  const api = data.api_base;
  const mi = data.map_index;

  const tabs = document.getElementById("ti-tabs");
  if (tabs) al.tabs(tabs);

  // --- logs ---
  const log = document.getElementById("log");
  const earlier = document.getElementById("log-earlier");
  const follow = document.getElementById("log-follow");
  const status = document.getElementById("log-status");
  const trySelect = document.getElementById("try-select");
  const download = document.getElementById("log-download");
  let tryNumber = Number(trySelect.value);
  let start = 0;       // byte offset of the first byte shown
  let next = 0;        // byte offset after the last byte shown
  let source = null;   // the EventSource while following
  let trimmed = false; // the page dropped text from the start (cap)
  let generation = 0;  // a newer load() wins over an older one still answering

  const logUrl = (n, extra) => `${api}/logs/${n}?map_index=${mi}${extra}`;
  const atBottom = () => log.scrollTop + log.clientHeight >= log.scrollHeight - 4;

  function cap() {
    if (log.textContent.length <= LOG_CAP) return;
    log.textContent = log.textContent.slice(log.textContent.length - LOG_CAP);
    trimmed = true;
    earlier.hidden = true;
    status.textContent = "Showing the last 2 MB; download for the whole file.";
  }

  function stopFollowing() {
    if (source) { source.close(); source = null; }
  }

  function startFollowing() {
    stopFollowing();
    if (!window.EventSource) return;
    const mine = generation;
    source = new EventSource(`${api}/logs/${tryNumber}/stream?map_index=${mi}&offset=${next}`);
    status.textContent = "Following…";
    source.addEventListener("log", (ev) => {
      if (mine !== generation) return;
      const chunk = JSON.parse(ev.data);
      const stick = atBottom();
      log.append(chunk.content);
      next = chunk.next_offset;
      cap();
      if (stick) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", () => {
      stopFollowing();
      status.textContent = "The try has ended.";
      refreshState();
    });
  }

  const FINISHED = ["success", "failed", "skipped", "upstream_failed", "removed"];
  const logs = data.logs || {};  // try number -> has a log file (when the page was made)

  // Whether the try has a log file; while the instance is unfinished, asks again every
  // few seconds until the file appears (the page may be opened before the try starts).
  async function hasLog(mine) {
    while (mine === generation) {
      if (logs[tryNumber]) return true;
      if (FINISHED.includes(data.state)) return false;
      status.textContent = "No log yet; waiting for the try to start…";
      await new Promise((resolve) => setTimeout(resolve, 3000));
      if (mine !== generation) return false;
      try {
        for (const t of await al.api("GET", `${api}/tries?map_index=${mi}`)) logs[t.try_number] = t.path_exists;
      } catch (err) { /* asked again next round */ }
    }
    return false;
  }

  async function load() {
    generation += 1;
    const mine = generation;
    stopFollowing();
    trimmed = false;
    log.textContent = "";
    earlier.hidden = true;
    download.href = logUrl(tryNumber, "&download=true");
    if (!(await hasLog(mine))) {
      if (mine === generation) status.textContent = "No log for this try.";
      return;
    }
    status.textContent = "Loading…";
    try {
      const page = await al.api("GET", logUrl(tryNumber, `&tail=${CHUNK}`));
      if (mine !== generation) return;
      log.textContent = page.content;
      start = page.offset;
      next = page.next_offset;
      earlier.hidden = start <= 0;
      status.textContent = page.size ? `${page.size} bytes` : "Empty log.";
      log.scrollTop = log.scrollHeight;
      if (page.running && follow.checked) startFollowing();
    } catch (err) {
      if (mine !== generation) return;
      log.textContent = "";
      earlier.hidden = true;
      status.textContent = err.status === 404 ? "No log for this try." : `Could not load the log: ${err.message}`;
    }
  }

  earlier.addEventListener("click", async () => {
    if (trimmed || start <= 0) return;
    if (log.textContent.length >= LOG_CAP) {
      status.textContent = "The page shows at most 2 MB; download for the whole file.";
      earlier.hidden = true;
      return;
    }
    const from = Math.max(0, start - CHUNK);
    const mine = generation;
    earlier.disabled = true;
    try {
      const page = await al.api("GET", logUrl(tryNumber, `&offset=${from}&limit=${start - from}`));
      if (mine !== generation) return;
      let text = page.content;
      let first = page.offset;
      const cut = first > 0 ? text.indexOf("\n") : -1;
      if (cut >= 0 && cut < text.length - 1) {  // start at a line start, as the tail does
        first += new TextEncoder().encode(text.slice(0, cut + 1)).length;
        text = text.slice(cut + 1);
      }
      const height = log.scrollHeight;
      log.prepend(text);
      log.scrollTop += log.scrollHeight - height;
      start = first;
      earlier.hidden = start <= 0;
    } catch (err) {
      al.flash(`Could not load earlier lines: ${err.message}`, "error");
    } finally {
      earlier.disabled = false;
    }
  });

  follow.addEventListener("change", () => {
    if (follow.checked) load(); else { stopFollowing(); status.textContent = "Not following."; }
  });
  trySelect.addEventListener("change", () => { tryNumber = Number(trySelect.value); load(); });
  window.addEventListener("pagehide", stopFollowing);
  load();

  async function refreshState() {
    try {
      const ti = await al.api("GET", mi >= 0 ? `${api}/${mi}` : api);
      const badge = document.querySelector("#ti-state .state-badge");
      if (badge) al.setState(badge, ti.state);
    } catch (err) { /* the page still shows the last known state */ }
  }

  // --- actions (admin) ---
  const actions = document.getElementById("ti-actions");
  if (!actions) return;
  const label = `${data.task_id}${mi >= 0 ? `[${mi}]` : ""}`;
  const names = (tis) => tis.map((t) => `${t.task_id}${t.map_index >= 0 ? `[${t.map_index}]` : ""}`);

  async function act(button, work) {
    for (const b of actions.querySelectorAll("button")) b.disabled = true;
    try {
      if (await work()) setTimeout(() => window.location.reload(), 400);
    } catch (err) {
      al.flash(err.message, "error");
    } finally {
      for (const b of actions.querySelectorAll("button")) b.disabled = false;
    }
  }

  actions.querySelector("button.clear-ti").addEventListener("click", (ev) => act(ev.target, async () => {
    const body = {
      dag_run_id: data.run_id, task_ids: [data.task_id], include_upstream: false,
      include_downstream: true, only_failed: false, dry_run: true,
    };
    if (mi >= 0) body.map_indexes = [mi];
    const url = `${data.dag_api}/clearTaskInstances`;
    const preview = await al.api("POST", url, body);
    const list = names(preview.task_instances || []);
    if (!list.length) { al.flash("Nothing to clear."); return false; }
    const shown = list.slice(0, 20).join("\n") + (list.length > 20 ? `\n… and ${list.length - 20} more` : "");
    if (!window.confirm(`Clear ${list.length} task instance(s)? They run again.\n\n${shown}`)) return false;
    const done = await al.api("POST", url, { ...body, dry_run: false });
    al.flash(`Cleared ${(done.task_instances || []).length} task instance(s).`);
    return true;
  }));

  for (const state of ["success", "failed"]) {
    actions.querySelector(`button.mark-${state}`).addEventListener("click", (ev) => act(ev.target, async () => {
      if (!window.confirm(`Mark ${label} in ${data.run_id} as ${state}?`)) return false;
      const body = { new_state: state };
      if (mi >= 0) body.map_index = mi;
      await al.api("PATCH", `${api}`, body);
      al.flash(`${label} marked ${state}.`);
      return true;
    }));
  }
})();
