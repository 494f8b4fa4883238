// The room's panels: files (list, download, delete), members (roles, remove, leave) and
// settings (title, system prompt, visibility, model, mode, tools; delete the room).

import { fileUrl } from "../api.js";
import { formatBytes } from "../lib/format.js";
import { can, canManage, roleOf } from "../lib/permissions.js";
import { confirmDialog } from "./confirm.js";
import { $, h, setText, show } from "./dom.js";

const TITLES = { files: "Files", members: "Members", settings: "Settings" };
const STATUS = { processing: "Reading…", ready: "Ready", stored: "Stored", failed: "Failed" };
let built = null; // {roomId, panel}: the settings form is built once per opening

const room = (s) => s.route.roomId && s.rooms[s.route.roomId];

export function mount({ store, actions }) {
  $("panel-close").addEventListener("click", () => {
    const s = store.get();
    actions.navigate({ page: "rooms", roomId: s.route.roomId, panel: null });
  });
  const body = $("room-panel-body");
  body.addEventListener("click", async (e) => {
    const btn = e.target.closest("button[data-action]");
    if (!btn) return;
    const s = store.get();
    const v = room(s);
    if (!v) return;
    const id = v.room.room_id;
    const { action, target } = btn.dataset;
    if (action === "delete-file") actions.deleteFile(id, target);
    else if (action === "remove-member") {
      const m = v.room.members.find((x) => x.user_id === target);
      if (m && await confirmDialog({ title: `Remove ${m.name}?`, text: `${m.name} will no longer see “${v.room.title}”. You can invite them again later.`, ok: "Remove" })) {
        actions.removeMember(id, target);
      }
    } else if (action === "leave") {
      if (await confirmDialog({ title: `Leave “${v.room.title}”?`, text: "The room leaves your list. Its owner can invite you again.", ok: "Leave room" })) {
        actions.leaveRoom(id);
      }
    } else if (action === "delete-room") {
      if (await confirmDialog({ title: `Delete “${v.room.title}”?`, text: "Its messages and files are deleted for every member. This cannot be undone.", ok: "Delete room" })) {
        actions.deleteRoom(id);
      }
    }
  });
  body.addEventListener("change", (e) => {
    const sel = e.target.closest("select[data-action='role']");
    if (sel) actions.setRole(store.get().route.roomId, sel.dataset.target, sel.value);
    const field = e.target.closest("[data-setting]");
    if (field) field.dataset.dirty = "true";
  });
  body.addEventListener("input", (e) => {
    const field = e.target.closest("[data-setting]");
    if (field) field.dataset.dirty = "true";
  });
  body.addEventListener("submit", async (e) => {
    if (e.target.id !== "settings-form") return;
    e.preventDefault();
    const v = room(store.get());
    if (!v) return;
    const fields = readSettings(e.target, v.room, store.get().tools);
    if (!Object.keys(fields).length) { setText($("settings-status"), "Nothing to save."); return; }
    setText($("settings-status"), "Saving…");
    const ok = await actions.updateRoom(v.room.room_id, fields, "settings");
    setText($("settings-status"), ok ? "Saved." : "");
    if (ok) for (const f of e.target.querySelectorAll("[data-dirty]")) delete f.dataset.dirty;
  });
}

export function render(s, prev) {
  const v = room(s);
  const panel = v ? s.route.panel : null;
  const pv = prev ? room(prev) : null;
  show($("room-panel"), Boolean(panel));
  if (!panel) { built = null; return; }
  if (prev && prev.route.panel === panel && pv === v && s.errors === prev.errors && s.busy === prev.busy
      && s.models === prev.models && s.tools === prev.tools && built && built.roomId === v.room.room_id) return;
  setText($("room-panel-title"), `${TITLES[panel]} of “${v.room.title}”`);
  const body = $("room-panel-body");
  if (panel === "settings") return renderSettings(s, v, body);
  built = null;
  keepFocus(body, () => body.replaceChildren(panel === "files" ? files(s, v) : members(s, v)));
}

/** Rebuild `container` without losing the focused control (found again by id). */
function keepFocus(container, rebuild) {
  const active = document.activeElement;
  const id = active && container.contains(active) ? active.id : null;
  rebuild();
  if (id && document.getElementById(id)) document.getElementById(id).focus();
}

const err = (s, key) => h("p.field-error", { role: "alert", text: s.errors[key] || "" });

function files(s, v) {
  const id = v.room.room_id;
  const mayDelete = can(v.room, s.me.user_id, "delete_file");
  if (v.files === null) return h("div", {}, h("p.muted", { text: s.busy[`files:${id}`] ? "Loading files…" : "" }), err(s, `files:${id}`));
  if (!v.files.length) return h("p.muted", { text: "No files in this room yet. Use Upload below the conversation to add some." });
  return h("ul.item-list", { "aria-label": "Files in this room" }, ...v.files.map((f) => h("li.item", { dataset: { fileId: f.file_id } },
    h("span.item-name", { text: f.filename }),
    h("span.muted", { text: `${formatBytes(f.size)} · ${STATUS[f.status] || f.status}${f.status === "failed" && f.error ? `: ${f.error}` : ""}` }),
    h("span.item-actions", {},
      h("a.button", { href: fileUrl(id, f.file_id), download: f.filename, "aria-label": `Download ${f.filename}`, text: "Download" }),
      mayDelete ? h("button", { type: "button", id: `del-file-${f.file_id}`, dataset: { action: "delete-file", target: f.file_id }, "aria-label": `Delete ${f.filename}`, disabled: s.busy[`file:${f.file_id}`], text: "Delete" }) : null),
    err(s, `file:${f.file_id}`))));
}

function members(s, v) {
  const me = s.me.user_id;
  const online = new Set(v.online);
  const rows = v.room.members.map((m) => {
    const manage = canManage(v.room, me, m.user_id);
    const key = `member:${m.user_id}`;
    const name = `${m.name}${m.user_id === me ? " (you)" : ""}`;
    const roleText = { owner: "Owner", member: "Can write", viewer: "Can only read" }[m.role];
    return h("li.item", { dataset: { userId: m.user_id, role: m.role } },
      h("span.item-name", {}, online.has(m.user_id) ? h("span.online-dot", { title: "online", "aria-hidden": "true" }) : null, name,
        online.has(m.user_id) ? h("span.sr-only", { text: ", online" }) : null),
      manage
        ? h("span.item-actions", {},
          h("label.sr-only", { for: `role-${m.user_id}`, text: `Role of ${m.name}` }),
          h("select", { id: `role-${m.user_id}`, dataset: { action: "role", target: m.user_id }, disabled: s.busy[key] },
            h("option", { value: "member", selected: m.role === "member", text: "Can write" }),
            h("option", { value: "viewer", selected: m.role === "viewer", text: "Can only read" })),
          h("button", { type: "button", id: `remove-${m.user_id}`, dataset: { action: "remove-member", target: m.user_id }, "aria-label": `Remove ${m.name}`, disabled: s.busy[key], text: "Remove" }))
        : h("span.muted", { text: roleText }),
      err(s, key));
  });
  const leave = can(v.room, me, "leave")
    ? h("div.panel-foot", {}, h("button.danger", { type: "button", id: "leave-btn", dataset: { action: "leave" }, disabled: s.busy.leave, text: "Leave room" }), err(s, "leave"))
    : null;
  return h("div", {}, h("ul.item-list", { "aria-label": "Members" }, ...rows), leave);
}

// ---- settings ----------------------------------------------------------------------

const field = (id, label, control, hint) => h("div.form-field", {},
  h("label", { for: id, text: label }), control, hint ? h("p.hint", { id: `${id}-hint`, text: hint }) : null);

function modelOptions(models, currentModel) {
  const opts = [h("option", { value: "", text: "Server default", selected: !currentModel })];
  const seen = new Set();
  for (const m of models) {
    seen.add(m.id);
    opts.push(h("option", { value: m.id, selected: m.id === currentModel, disabled: !m.available && m.id !== currentModel,
      text: `${m.name} (${m.provider})${m.available ? "" : ", no key configured"}` }));
  }
  if (currentModel && !seen.has(currentModel)) opts.push(h("option", { value: currentModel, selected: true, text: currentModel }));
  return opts;
}

function renderSettings(s, v, body) {
  const owner = can(v.room, s.me.user_id, "edit_settings");
  if (!owner) {
    built = null;
    const r = v.room;
    body.replaceChildren(h("dl.settings-view", {},
      h("dt", { text: "Model" }), h("dd", { text: r.model || "Server default" }),
      h("dt", { text: "Assistant" }), h("dd", { text: r.assistant_mode }),
      h("dt", { text: "Visibility" }), h("dd", { text: r.visibility }),
      h("dt", { text: "System prompt" }), h("dd", { text: r.system_prompt || "(none)" }),
      h("dt", { text: "Your role" }), h("dd", { text: roleOf(r, s.me.user_id) || "" })));
    return;
  }
  const id = v.room.room_id;
  if (!built || built.roomId !== id || !$("settings-form")) {
    body.replaceChildren(settingsForm(s, v));
    built = { roomId: id };
  } else {
    syncSettings($("settings-form"), v.room, s);
  }
  setText($("settings-error"), s.errors.settings || "");
  setText($("delete-room-error"), s.errors["delete-room"] || "");
  $("settings-save").disabled = Boolean(s.busy.settings);
  $("delete-room-btn").disabled = Boolean(s.busy["delete-room"]);
}

function toolsFieldset(s, r) {
  // Tools (SPEC §9) show once the server lists them (GET /api/v1/tools) and rooms carry `tools`.
  if (!s.tools || !Array.isArray(r.tools)) return null;
  return h("fieldset.form-field", { id: "settings-tools" }, h("legend", { text: "Tools the assistant may use" }),
    ...s.tools.map((t) => h("label.check", {},
      h("input", { type: "checkbox", name: "tools", value: t.name, checked: r.tools.includes(t.name), disabled: !t.configured && !r.tools.includes(t.name), "data-setting": "tools" }),
      ` ${t.name}`, t.description ? h("span.muted", { text: ` — ${t.description}` }) : null)));
}

function settingsForm(s, v) {
  const r = v.room;
  return h("div", {},
    h("form", { id: "settings-form", class: "settings-form" },
      field("setting-title", "Title", h("input", { id: "setting-title", type: "text", maxlength: "200", required: true, value: r.title, "data-setting": "title" })),
      field("setting-prompt", "System prompt", h("textarea", { id: "setting-prompt", rows: "4", "data-setting": "system_prompt", "aria-describedby": "setting-prompt-hint" }, r.system_prompt),
        "Instructions the assistant follows in this room."),
      field("setting-visibility", "Visibility", h("select", { id: "setting-visibility", "data-setting": "visibility" },
        h("option", { value: "private", selected: r.visibility === "private", text: "Private: members and invitees only" }),
        h("option", { value: "public", selected: r.visibility === "public", text: "Public: anyone can find and join it" }))),
      field("setting-model", "Model", h("select", { id: "setting-model", "data-setting": "model" }, ...modelOptions(s.models, r.model))),
      field("setting-mode", "Assistant mode", h("select", { id: "setting-mode", "data-setting": "assistant_mode" },
        h("option", { value: "always", selected: r.assistant_mode === "always", text: "Answers every message" }),
        h("option", { value: "mention", selected: r.assistant_mode === "mention", text: "Answers when @assistant is mentioned" }),
        h("option", { value: "off", selected: r.assistant_mode === "off", text: "Off" }))),
      toolsFieldset(s, r),
      h("div.row-left", {},
        h("button.primary", { type: "submit", id: "settings-save", "aria-describedby": "settings-error", text: "Save settings" }),
        h("span.muted", { id: "settings-status", role: "status" })),
      h("p.field-error", { id: "settings-error", role: "alert" })),
    h("div.danger-zone", {},
      h("h3", { text: "Delete this room" }),
      h("p.muted", { text: "Deletes its messages and files for every member." }),
      h("button.danger", { type: "button", id: "delete-room-btn", dataset: { action: "delete-room" }, "aria-describedby": "delete-room-error", text: "Delete room…" }),
      h("p.field-error", { id: "delete-room-error", role: "alert" })));
}

/** After the room changed (saved, or by another tab): fields the user has not touched follow it. */
function syncSettings(form, r, s) {
  const values = { title: r.title, system_prompt: r.system_prompt, visibility: r.visibility, model: r.model || "", assistant_mode: r.assistant_mode };
  for (const el of form.querySelectorAll("[data-setting]")) {
    if (el.dataset.dirty || document.activeElement === el || el.name === "tools") continue;
    const want = values[el.dataset.setting];
    if (el.id === "setting-model" && ![...el.options].some((o) => o.value === want)) el.replaceChildren(...modelOptions(s.models, r.model));
    if (want !== undefined && el.value !== want) el.value = want;
  }
}

function readSettings(form, r, tools) {
  const out = {};
  const val = (id) => form.querySelector(`#${id}`).value;
  const title = val("setting-title").trim();
  if (title && title !== r.title) out.title = title;
  if (val("setting-prompt") !== r.system_prompt) out.system_prompt = val("setting-prompt");
  if (val("setting-visibility") !== r.visibility) out.visibility = val("setting-visibility");
  const model = val("setting-model");
  if (model && model !== (r.model || "")) out.model = model;
  if (val("setting-mode") !== r.assistant_mode) out.assistant_mode = val("setting-mode");
  if (tools && Array.isArray(r.tools)) {
    const chosen = [...form.querySelectorAll("input[name=tools]:checked")].map((x) => x.value);
    if (chosen.join() !== r.tools.join()) out.tools = chosen;
  }
  return out;
}
