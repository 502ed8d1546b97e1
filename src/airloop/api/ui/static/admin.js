// Admin pages (pools, connections, variables): one dialog to create or edit a row,
// delete with a confirmation; everything through the JSON API. A field the API shows
// masked (a connection's extra, a sensitive variable) is sent back only when the user
// changed it; the password input is write-only (blank keeps the stored password).
"use strict";
(() => {
  const root = document.getElementById("admin");
  const dialog = document.getElementById("admin-dialog");
  if (!root || !dialog) return;
  const al = window.airloop;
  const items = al.json("admin-items") || [];
  const api = root.dataset.api;
  const keyField = root.dataset.key;
  const form = document.getElementById("admin-form");
  const errorBox = document.getElementById("admin-error");
  const fields = [...form.querySelectorAll(".field[data-field]")];
  let editing = null;  // the item being edited, or null for a new one

  const shown = (value) => {
    if (value === null || value === undefined) return "";
    return typeof value === "object" ? JSON.stringify(value, null, 2) : String(value);
  };

  function open(item) {
    editing = item;
    errorBox.hidden = true;
    document.getElementById("admin-form-title").textContent = item ? `Edit ${item[keyField]}` : "New";
    for (const f of fields) {
      const input = f.querySelector("[name]");
      input.classList.remove("invalid");
      input.value = item && f.dataset.kind !== "password" ? shown(item[f.dataset.field]) : "";
      input.readOnly = Boolean(item) && f.dataset.field === keyField;
      if (f.dataset.kind === "password") {
        input.placeholder = item && item.has_password ? "(unchanged)" : "";
      }
    }
    dialog.showModal();
  }

  // The value to send for one field, or undefined to leave it out.
  function value(f) {
    const name = f.dataset.field;
    const kind = f.dataset.kind;
    const raw = f.querySelector("[name]").value;
    if (kind === "password") return raw === "" ? undefined : raw;
    if (editing) {
      if (name === keyField) return undefined;
      if (raw === shown(editing[name])) return undefined;  // unchanged (masked stays masked)
    }
    if (raw.trim() === "") return editing ? null : undefined;
    if (kind === "integer") {
      const n = Number(raw);
      if (!Number.isInteger(n)) throw new Error(`${name}: ${raw} is not an integer`);
      return n;
    }
    if (editing && editing[name] !== null && typeof editing[name] === "object") {
      try { return JSON.parse(raw); } catch (e) { throw new Error(`${name}: not valid JSON (${e.message})`); }
    }
    return raw;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errorBox.hidden = true;
    const body = {};
    try {
      for (const f of fields) {
        const v = value(f);
        if (v !== undefined) body[f.dataset.field] = v;
      }
    } catch (err) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
      return;
    }
    try {
      if (editing) {
        if (!Object.keys(body).length) { dialog.close(); return; }
        await al.api("PATCH", `${api}/${encodeURIComponent(editing[keyField])}`, body);
      } else {
        await al.api("POST", api, body);
      }
      window.location.reload();
    } catch (err) {
      errorBox.textContent = err.message;
      errorBox.hidden = false;
    }
  });

  document.getElementById("admin-cancel").addEventListener("click", () => dialog.close());
  const create = document.getElementById("admin-new");
  if (create) create.addEventListener("click", () => open(null));

  document.getElementById("admin-table").addEventListener("click", async (ev) => {
    const row = ev.target.closest("tr[data-index]");
    if (!row) return;
    const item = items[Number(row.dataset.index)];
    if (ev.target.closest("button.edit")) open(item);
    if (ev.target.closest("button.delete")) {
      if (!window.confirm(`Delete ${item[keyField]}?`)) return;
      try {
        await al.api("DELETE", `${api}/${encodeURIComponent(item[keyField])}`);
        row.remove();
        al.flash(`${item[keyField]} deleted.`);
      } catch (err) {
        al.flash(`Could not delete ${item[keyField]}: ${err.message}`, "error");
      }
    }
  });
})();
