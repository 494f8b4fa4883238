// The room's panels: files (list, download, delete), members (roles, remove, leave) and
// settings (title, system prompt, visibility, model, mode, the room's tools; delete the room).

import { fileUrl } from "../api.js";
import { formatBytes } from "../lib/format.js";
import { can, canDeleteFile, canManage, roleOf } from "../lib/permissions.js";
import { sameTools, toolChoices } from "../lib/tools.js";
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
    const form = e.target;
    const fields = readSettings(form, v.room);
    const tools = readTools(form, v.room);
    if (!Object.keys(fields).length && !tools) { setText($("settings-status"), "Nothing to save."); return; }
    setText($("settings-status"), "Saving…");
    // The tools go in their own update_room, so a refusal (a tool this server cannot run)
    // shows its sentence next to the tools and the other settings still save.
    let ok = true;
    if (Object.keys(fields).length) {
      const saved = await actions.updateRoom(v.room.room_id, fields, "settings");
      if (saved) for (const f of form.querySelectorAll("[data-dirty]:not([name=tools])")) delete f.dataset.dirty;
      ok = saved;
    }
    if (tools) {
      const saved = await actions.updateRoom(v.room.room_id, { tools }, "tools");
      if (saved) for (const f of form.querySelectorAll("input[name=tools][data-dirty]")) delete f.dataset.dirty;
      ok = saved && ok;
    }
    setText($("settings-status"), ok ? "Saved." : "Not everything was saved: see the message below the setting.");
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
  const mayDelete = (f) => canDeleteFile(v.room, s.me.user_id, f);
  if (v.files === null) return h("div", {}, h("p.muted", { text: s.busy[`files:${id}`] ? "Loading files…" : "" }), err(s, `files:${id}`));
  if (!v.files.length) return h("p.muted", { text: "No files in this room yet. Use Upload below the conversation to add some." });
  return h("ul.item-list", { "aria-label": "Files in this room" }, ...v.files.map((f) => h("li.item", { dataset: { fileId: f.file_id } },
    h("span.item-name", { text: f.filename }),
    h("span.muted", { text: `${formatBytes(f.size)} · ${STATUS[f.status] || f.status}${f.status === "failed" && f.error ? `: ${f.error}` : ""}` }),
    h("span.item-actions", {},
      h("a.button", { href: fileUrl(id, f.file_id), download: f.filename, "aria-label": `Download ${f.filename}`, text: "Download" }),
      mayDelete(f) ? h("button", { type: "button", id: `del-file-${f.file_id}`, dataset: { action: "delete-file", target: f.file_id }, "aria-label": `Delete ${f.filename}`, disabled: s.busy[`file:${f.file_id}`], text: "Delete" }) : null),
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
      Array.isArray(r.tools) ? h("dt", { text: "Tools" }) : null,
      Array.isArray(r.tools) ? h("dd", { id: "settings-view-tools", text: r.tools.length ? r.tools.join(", ") : "none" }) : null,
      h("dt", { text: "Your role" }), h("dd", { text: roleOf(r, s.me.user_id) || "" })));
    return;
  }
  const id = v.room.room_id;
  if (!built || built.roomId !== id || !$("settings-form")) {
    body.replaceChildren(settingsForm(s, v));
    built = { roomId: id, tools: null };
  } else {
    syncSettings($("settings-form"), v.room, s);
  }
  renderTools(s, v.room);
  setText($("settings-error"), s.errors.settings || "");
  setText($("delete-room-error"), s.errors["delete-room"] || "");
  $("settings-save").disabled = Boolean(s.busy.settings || s.busy.tools);
  $("delete-room-btn").disabled = Boolean(s.busy["delete-room"]);
}

const toolId = (name) => `tool-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;

/**
 * The tools fieldset (SPEC §9): a checkbox per tool the server lists (GET /api/v1/tools),
 * rebuilt when the list, the room's tools or the tools error change; boxes the owner has
 * changed but not saved keep their state, and the focus stays where it was.
 */
function renderTools(s, r) {
  const slot = $("settings-tools-slot");
  if (!slot) return;
  const key = { tools: s.tools, roomTools: r.tools, error: s.errors.tools, listError: s.errors["tools-list"] };
  const last = built && built.tools;
  if (last && Object.keys(key).every((k) => last[k] === key[k])) return;
  if (built) built.tools = key;
  if (!Array.isArray(r.tools)) { slot.replaceChildren(); return; } // a server without tools
  const pending = new Map();
  for (const box of slot.querySelectorAll("input[name=tools][data-dirty]")) pending.set(box.value, box.checked);
  const choices = toolChoices(s.tools, r.tools);
  let content;
  if (s.tools === null) {
    content = [s.errors["tools-list"]
      ? h("p.field-error", { text: `The list of tools could not be loaded: ${s.errors["tools-list"]}` })
      : h("p.hint", { text: "Loading the tools this server offers…" })];
  } else if (!choices.length) {
    content = [h("p.hint", { text: "This server offers no tools." })];
  } else {
    content = [h("div.tool-choices", {}, ...choices.map((c) => {
      const id = toolId(c.name);
      const about = [c.description, c.hint].filter(Boolean).join(" ");
      const box = h("input", { type: "checkbox", id, name: "tools", value: c.name, checked: c.checked,
        disabled: c.disabled, "data-setting": "tools", "aria-describedby": about ? `${id}-about` : null });
      if (pending.has(c.name) && !c.disabled) { box.checked = pending.get(c.name); box.dataset.dirty = "true"; }
      return h("div.tool-choice", { dataset: { tool: c.name } }, box, h("label", { for: id, text: c.name }),
        about ? h("p.hint", { id: `${id}-about`, text: about }) : null);
    }))];
  }
  keepFocus(slot, () => slot.replaceChildren(h("fieldset.form-field", { id: "settings-tools", "aria-describedby": "settings-tools-error" },
    h("legend", { text: "Tools the assistant may use" }),
    h("p.hint", { text: "The assistant can call these while it answers in this room; everyone in the room sees each call." }),
    ...content,
    h("p.field-error", { id: "settings-tools-error", role: "alert", text: s.errors.tools || "" }))));
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
      h("div", { id: "settings-tools-slot" }),
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

function readSettings(form, r) {
  const out = {};
  const val = (id) => form.querySelector(`#${id}`).value;
  const title = val("setting-title").trim();
  if (title && title !== r.title) out.title = title;
  if (val("setting-prompt") !== r.system_prompt) out.system_prompt = val("setting-prompt");
  if (val("setting-visibility") !== r.visibility) out.visibility = val("setting-visibility");
  const model = val("setting-model");
  if (model && model !== (r.model || "")) out.model = model;
  if (val("setting-mode") !== r.assistant_mode) out.assistant_mode = val("setting-mode");
  return out;
}

/** The tools the owner ticked, or null when they are the room's already. */
function readTools(form, r) {
  // No checkboxes yet (the list is loading): nothing to say about the tools.
  if (!Array.isArray(r.tools) || !form.querySelector("input[name=tools]")) return null;
  const chosen = [...form.querySelectorAll("input[name=tools]:checked")].map((x) => x.value);
  return sameTools(chosen, r.tools) ? null : chosen;
}
