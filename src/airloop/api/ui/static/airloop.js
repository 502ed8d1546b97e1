// airloop's UI: helpers every page uses. No framework, no build step, no inline scripts
// (the CSP forbids them): pages put their data in data-* attributes or in
// <script type="application/json" id="..."> blocks read with airloop.json(id).
"use strict";

class ApiError extends Error {
  constructor(status, data, fallback) {
    super((data && typeof data.detail === "string" && data.detail) || fallback);
    this.status = status;
    this.data = data;  // the whole JSON body: {"detail", "errors"?} or FastAPI's 422 list
  }
}

window.airloop = {
  ApiError,

  csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && meta.content) return meta.content;
    // auth = "none": the double-submit cookie
    const match = document.cookie.match(/(?:^|;\s*)airloop_csrf=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  },

  // A JSON request to the API; state-changing ones carry the CSRF token. Resolves to the
  // parsed JSON (null for 204); rejects with an ApiError carrying .status and .data.
  async api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = this.csrfToken();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
    if (!response.ok) {
      let fallback = `${response.status} ${response.statusText}`;
      if (data && Array.isArray(data.detail)) {  // FastAPI 422: [{loc, msg}]
        fallback = data.detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
      }
      throw new ApiError(response.status, data, fallback);
    }
    return data;
  },

  // The parsed content of a <script type="application/json" id="..."> block (or null).
  json(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  },

  // "2026-12-02 05:30:00" in the browser's time zone; "" for null.
  formatDate(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  },

  // Seconds as "0.4s", "12s", "3m 4s", "2h 5m", "3d 4h" (as the server's fmt_duration).
  formatDuration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
    if (seconds < 10) return `${seconds.toFixed(1)}s`;
    let rest = Math.round(seconds);
    const days = Math.floor(rest / 86400); rest %= 86400;
    const hours = Math.floor(rest / 3600); rest %= 3600;
    const minutes = Math.floor(rest / 60); const secs = rest % 60;
    if (days) return `${days}d ${hours}h`;
    if (hours) return `${hours}h ${minutes}m`;
    if (minutes) return `${minutes}m ${secs}s`;
    return `${secs}s`;
  },

  // A state badge element, as the macro state_badge() renders it.
  stateBadge(state) {
    const s = state || "none";
    const span = document.createElement("span");
    span.className = `state-badge state-${s}`;
    span.dataset.state = s;
    span.textContent = s.replace(/_/g, " ");
    return span;
  },

  // Replace the state-* class of an element (badge, circle, cell) and its data-state.
  setState(el, state) {
    const s = state || "none";
    for (const c of [...el.classList]) if (c.startsWith("state-")) el.classList.remove(c);
    el.classList.add(`state-${s}`);
    el.dataset.state = s;
    if (el.classList.contains("state-badge")) el.textContent = s.replace(/_/g, " ");
  },

  // A message at the top of the page (kind: "info" | "error").
  flash(message, kind = "info") {
    const box = document.getElementById("flash");
    if (!box) { if (kind === "error") window.alert(message); return; }
    box.textContent = message;
    box.className = `flash flash-${kind}`;
    box.hidden = false;
    clearTimeout(this._flashTimer);
    if (kind !== "error") this._flashTimer = setTimeout(() => { box.hidden = true; }, 5000);
  },

  // <time datetime> elements in local time (the server wrote UTC).
  localizeTimes(root = document) {
    for (const t of root.querySelectorAll("time[datetime]")) {
      t.title = t.getAttribute("datetime");
      t.textContent = this.formatDate(t.getAttribute("datetime"));
    }
  },

  // A cell's state for a tooltip: its own, or a mapped task's counts.
  stateText(data) {
    return data.state || `${data.total || 0} instances: ${data.summary || ""}`;
  },

  // One tooltip element reused for every item matching `selector` inside `container`
  // (never one per cell). text(item) gives its lines; onEnter/onLeave(item) are optional.
  hoverTip(container, tip, selector, text, { onEnter, onLeave } = {}) {
    let current = null;
    const move = (event) => {
      const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      const y = Math.min(event.clientY + 14, window.innerHeight - tip.offsetHeight - 8);
      tip.style.left = `${x + window.scrollX}px`;
      tip.style.top = `${y + window.scrollY}px`;
    };
    const leave = () => {
      if (current && onLeave) onLeave(current);
      current = null;
      tip.hidden = true;
    };
    container.addEventListener("mouseover", (event) => {
      const item = event.target.closest(selector);
      if (item === current) return;
      leave();
      if (!item) return;
      current = item;
      if (onEnter) onEnter(item);
      tip.textContent = text(item).join("\n");
      tip.hidden = false;
      move(event);
    });
    container.addEventListener("mousemove", (event) => { if (current) move(event); });
    container.addEventListener("mouseleave", leave);
    return { hide: leave };
  },

  // Tabs: <nav class="tabs"><a data-tab="logs">..</a></nav> and <section data-panel="logs">.
  // The active tab is kept in the URL's hash. onShow(name) is called when a tab opens.
  tabs(nav, onShow) {
    const links = [...nav.querySelectorAll("[data-tab]")];
    const show = (name) => {
      for (const a of links) a.classList.toggle("active", a.dataset.tab === name);
      for (const p of document.querySelectorAll("[data-panel]")) p.hidden = p.dataset.panel !== name;
      if (onShow) onShow(name);
    };
    for (const a of links) {
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        history.replaceState(null, "", `#${a.dataset.tab}`);
        show(a.dataset.tab);
      });
    }
    const wanted = location.hash.slice(1);
    show(links.some((a) => a.dataset.tab === wanted) ? wanted : links[0].dataset.tab);
  },
};

document.addEventListener("DOMContentLoaded", () => {
  window.airloop.localizeTimes();
  for (const nav of document.querySelectorAll("nav.tabs[data-auto]")) window.airloop.tabs(nav);
});
