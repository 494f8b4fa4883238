// The room on screen: header, invite form, presence, the conversation, uploads, composer.

import { isFinal, ordered, regenerateTarget } from "../lib/messages.js";
import { demoNotice } from "../lib/models.js";
import { can, roleOf } from "../lib/permissions.js";
import { nextTypingExpiry, onlineNames, typingLine } from "../lib/presence.js";
import { storedCalls } from "../lib/tools.js";
import { $, h, setText, show } from "./dom.js";
import { renderMessage } from "./message.js";
import { renderUploads } from "./uploads.js";
import { attachmentsKnown } from "./attachments.js";

const MODE_TEXT = {
  always: "answers every message",
  mention: "answers when @assistant is mentioned",
  off: "is off",
};

// What is drawn now, to redraw only what changed.
const drawn = { roomId: null, els: new Map(), src: new Map(), order: [], sortedFor: null, sorted: [] };
let typingTimer = null;
// Files picked or dropped for the next message (uploaded when it is sent), and the mic.
let pendingFiles = [];
const MAX_ATTACH = 20;
const mic = { recorder: null, chunks: [] };
const filesAsked = new Set(); // rooms whose file list was fetched for attachments

const current = (s) => (s.route.page === "rooms" && s.route.roomId ? s.rooms[s.route.roomId] || null : null);

export function mount({ store, actions }) {
  const roomId = () => store.get().route.roomId;
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(store, actions); });
  const input = $("message-input");
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      send(store, actions);
    }
  });
  input.addEventListener("input", () => { if (roomId()) actions.typing(roomId()); });
  input.addEventListener("blur", () => actions.stopTyping());
  $("stop-btn").addEventListener("click", () => {
    const v = current(store.get());
    if (v) actions.stop(v.room.room_id, Object.keys(v.streams)[0]);
  });
  $("regenerate-btn").addEventListener("click", () => {
    const v = current(store.get());
    const target = v && regenerateTarget(ordered(v.messages));
    if (target) actions.regenerate(v.room.room_id, target);
  });
  $("upload-btn").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (e) => {
    const files = Array.from(e.target.files || []);
    e.target.value = "";
    if (files.length && roomId()) actions.upload({ scope: "room", room_id: roomId() }, files);
  });
  $("attach-btn").addEventListener("click", () => $("attach-input").click());
  $("attach-input").addEventListener("change", (e) => {
    addPending(Array.from(e.target.files || []));
    e.target.value = "";
  });
  const composer = $("composer");
  composer.addEventListener("dragover", (e) => {
    if (e.dataTransfer && [...e.dataTransfer.types].includes("Files")) {
      e.preventDefault();
      composer.classList.add("dropping");
    }
  });
  composer.addEventListener("dragleave", () => composer.classList.remove("dropping"));
  composer.addEventListener("drop", (e) => {
    composer.classList.remove("dropping");
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    addPending(Array.from(e.dataTransfer.files));
  });
  $("attach-list").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-index]");
    if (!btn) return;
    pendingFiles = pendingFiles.filter((_, i) => i !== Number(btn.dataset.index));
    renderPending();
    $("message-input").focus();
  });
  $("mic-btn").addEventListener("click", () => toggleMic(store, actions));
  $("invite-btn").addEventListener("click", () => toggleInvite(store, actions));
  $("invite-cancel").addEventListener("click", () => toggleInvite(store, actions, false));
  $("invite-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = $("invite-email").value.trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
      store.apply((s) => ({ ...s, errors: { ...s.errors, invite: "Please enter the email address of the person to invite." } }));
      $("invite-email").focus();
      return;
    }
    if (await actions.invite(roomId(), email, $("invite-role").value)) {
      $("invite-email").value = "";
      toggleInvite(store, actions, false);
    }
  });
  const title = $("room-title-input");
  title.addEventListener("change", async () => {
    const v = current(store.get());
    const text = title.value.trim();
    if (!v) return;
    if (!text) { title.value = v.room.title; return; }
    if (text !== v.room.title) {
      const ok = await actions.updateRoom(v.room.room_id, { title: text }, "title");
      if (!ok) title.value = current(store.get()) ? current(store.get()).room.title : text;
    }
  });
  title.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); title.blur(); } });
  document.querySelector(".room-actions").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-panel]");
    if (!btn) return;
    const s = store.get();
    const panel = s.route.panel === btn.dataset.panel ? null : btn.dataset.panel;
    actions.navigate({ page: "rooms", roomId: s.route.roomId, panel });
  });
}

function toggleInvite(store, actions, open) {
  const form = $("invite-form");
  const show_ = open === undefined ? form.hidden : open;
  form.hidden = !show_;
  $("invite-btn").setAttribute("aria-expanded", String(show_));
  actions.clearError("invite");
  if (show_) $("invite-email").focus();
}

function addPending(files) {
  pendingFiles = [...pendingFiles, ...files].slice(0, MAX_ATTACH);
  renderPending();
}

function renderPending() {
  const list = $("attach-list");
  list.replaceChildren(...pendingFiles.map((f, i) => h("li.attach-chip", {},
    h("span", { text: f.name }),
    h("button", { type: "button", dataset: { index: String(i) }, "aria-label": `Remove ${f.name}`, text: "×" }))));
  list.hidden = pendingFiles.length === 0;
}

async function send(store, actions) {
  const v = current(store.get());
  const input = $("message-input");
  const content = input.value;
  const files = pendingFiles;
  if (!v || (!content.trim() && !files.length)) return;
  input.value = "";
  const status = $("composer-status");
  status.textContent = files.length ? "Sending the files…" : "Sending…";
  let fileIds = [];
  if (files.length) {
    const records = await actions.upload({ scope: "room", room_id: v.room.room_id }, files);
    if (!records) {
      status.textContent = "Not sent: the files could not be uploaded. Your text is back in the box.";
      if (!input.value) input.value = content;
      return;
    }
    fileIds = records.map((r) => r.file_id);
    pendingFiles = [];
    renderPending();
  }
  const ok = await actions.sendMessage(v.room.room_id, content, fileIds);
  status.textContent = ok ? "" : "Not sent. Your text is back in the box.";
  if (!ok && !input.value) input.value = content;
}

/** Ask aloud (private chats): record, send to /run/audio, play the spoken answer. */
async function toggleMic(store, actions) {
  const btn = $("mic-btn");
  const status = $("composer-status");
  if (mic.recorder) {
    mic.recorder.stop();
    return;
  }
  const v = current(store.get());
  if (!v || !navigator.mediaDevices || !window.MediaRecorder) {
    status.textContent = "This browser cannot record audio.";
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    status.textContent = "The microphone is not available (permission refused?).";
    return;
  }
  const roomId = v.room.room_id;
  mic.chunks = [];
  mic.recorder = new MediaRecorder(stream);
  mic.recorder.addEventListener("dataavailable", (e) => { if (e.data.size) mic.chunks.push(e.data); });
  mic.recorder.addEventListener("stop", async () => {
    stream.getTracks().forEach((t) => t.stop());
    const type = mic.recorder.mimeType || "audio/webm";
    mic.recorder = null;
    btn.setAttribute("aria-pressed", "false");
    btn.textContent = "Ask aloud";
    status.textContent = "Thinking…";
    const answer = await actions.askAloud(roomId, new Blob(mic.chunks, { type }));
    status.textContent = answer ? "" : "The question could not be answered aloud.";
    if (answer) new Audio(URL.createObjectURL(answer)).play().catch(() => {});
  });
  mic.recorder.start();
  btn.setAttribute("aria-pressed", "true");
  btn.textContent = "Stop and send";
  status.textContent = "Recording… press again to send.";
}

export function render(s, prev, ctx) {
  const v = current(s);
  const pv = prev ? current(prev) : undefined;
  if (prev && v === pv && s.route === prev.route && s.errors === prev.errors && s.uploads === prev.uploads
      && s.busy === prev.busy && s.models === prev.models) return;
  show($("no-room"), !v);
  show($("room-pane"), Boolean(v));
  $("room-view").setAttribute("aria-label", v ? `Room: ${v.room.title}` : "No room open");
  if (!v) {
    if (drawn.roomId) { $("message-list").replaceChildren(); drawn.els.clear(); drawn.src.clear(); drawn.roomId = null; }
    return;
  }
  const switched = drawn.roomId !== v.room.room_id;
  if (switched) {
    $("invite-form").hidden = true;
    $("invite-btn").setAttribute("aria-expanded", "false");
    $("composer-status").textContent = "";
    if (window.matchMedia("(min-width: 721px)").matches) requestAnimationFrame(() => $("message-input").focus());
  }
  if (switched || !pv || v.room !== pv.room || s.errors !== prev.errors || s.route.panel !== prev.route.panel) renderHeader(s, v);
  if (switched || !pv || v.online !== pv.online || v.typing !== pv.typing || v.room !== pv.room) renderPresence(s, v, ctx);
  const modelsChanged = Boolean(prev) && s.models !== prev.models;
  if (modelsChanged) drawn.src.clear(); // demo notices depend on the model list: redraw every message
  const filesChanged = Boolean(pv) && v.files !== pv.files;
  if (filesChanged) drawn.src.clear(); // attachments show their type once the file list is known
  if (switched || !pv || modelsChanged || filesChanged || v.messages !== pv.messages || v.streams !== pv.streams) renderMessages(s, v);
  if (!attachmentsKnown(v) && !filesAsked.has(`${v.room.room_id}:${Object.keys(v.messages).length}`)) {
    filesAsked.add(`${v.room.room_id}:${Object.keys(v.messages).length}`);
    ctx.actions.loadFiles(v.room.room_id);
  }
  renderUploads($("upload-list"), s.uploads.filter((u) => u.scope === "room" && u.room_id === v.room.room_id));
  setText($("upload-error"), s.errors[`upload:${v.room.room_id}`] || "");
  renderControls(s, v);
}

function renderHeader(s, v) {
  const { room } = v;
  const me = s.me.user_id;
  const role = roleOf(room, me);
  const owner = role === "owner";
  setText($("room-title"), room.title);
  show($("room-title"), !owner);
  const titleInput = $("room-title-input");
  show(titleInput, owner);
  if (document.activeElement !== titleInput) titleInput.value = room.title;
  setText($("title-error"), s.errors.title || "");
  show($("invite-btn"), can(room, me, "invite"));
  setText($("invite-error"), s.errors.invite || "");
  for (const btn of document.querySelectorAll(".room-actions button[data-panel]")) {
    btn.setAttribute("aria-expanded", String(s.route.panel === btn.dataset.panel));
  }
  const members = room.members.length;
  const ownerMember = room.members.find((m) => m.user_id === room.owner_id);
  const bits = [`${members} member${members === 1 ? "" : "s"}`];
  if (!owner && ownerMember) bits.push(`owner ${ownerMember.name}`);
  bits.push(`model ${room.model || "default"}`, `the assistant ${MODE_TEXT[room.assistant_mode] || room.assistant_mode}`);
  if (room.visibility === "public") bits.push("public");
  if (role === "viewer") bits.push("you can read but not write here");
  setText($("room-info"), bits.join(" · "));
}

function renderPresence(s, v, ctx) {
  const now = Date.now();
  const names = onlineNames(v.room, v.online, s.me.user_id);
  $("online-list").replaceChildren(h("span.online-dot", { "aria-hidden": "true" }),
    `Online: ${names.length ? names.join(", ") : "nobody else"}`);
  setText($("typing-line"), typingLine(v.room, v.typing, now, s.me.user_id));
  clearTimeout(typingTimer);
  const next = nextTypingExpiry(v.typing, now);
  if (next) {
    // A typing notice lapses: redraw the line then (nothing in the state changes).
    typingTimer = setTimeout(() => {
      const s2 = ctx.store.get();
      const v2 = current(s2);
      if (v2) renderPresence(s2, v2, ctx);
    }, next - now + 50);
  }
}

function items(v) {
  if (drawn.sortedFor !== v.messages) {
    drawn.sorted = ordered(v.messages);
    drawn.sortedFor = v.messages;
  }
  const out = drawn.sorted.map((m) => ({ id: m.message_id, msg: m, stream: v.streams[m.message_id] }));
  for (const [id, st] of Object.entries(v.streams)) {
    if (!v.messages[id]) out.push({ id, msg: null, stream: st });
  }
  return out;
}

function renderMessages(s, v) {
  const list = $("message-list");
  if (drawn.roomId !== v.room.room_id) {
    list.replaceChildren();
    drawn.els.clear();
    drawn.src.clear();
    drawn.order = [];
    drawn.roomId = v.room.room_id;
  }
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  const all = items(v);
  const keep = new Set();
  let mineNew = false;
  for (const it of all) {
    keep.add(it.id);
    const src = it.stream || it.msg;
    if (drawn.src.get(it.id) === src && drawn.els.has(it.id)) continue;
    let msg = it.msg;
    if (it.stream) {
      msg = { message_id: it.id, room_id: v.room.room_id, role: "assistant", author: null,
        model: it.stream.model, reply_to: it.stream.reply_to, created_at: it.stream.created_at,
        ...(it.msg || {}), status: "streaming" };
    }
    const isNew = !drawn.els.has(it.id);
    const el = renderMessage(drawn.els.get(it.id), msg, {
      me: s.me.user_id,
      streamingText: it.stream ? it.stream.text : undefined,
      calls: it.stream ? it.stream.calls : storedCalls(msg.tool_calls),
      notice: msg.role === "assistant" && isFinal(msg) ? demoNotice(s.models, msg.model) : null,
      files: v.files,
    });
    drawn.els.set(it.id, el);
    drawn.src.set(it.id, src);
    if (isNew && msg.author && msg.author.user_id === s.me.user_id) mineNew = true;
  }
  for (const id of [...drawn.els.keys()]) {
    if (!keep.has(id)) { drawn.els.get(id).remove(); drawn.els.delete(id); drawn.src.delete(id); }
  }
  const order = all.map((it) => it.id);
  if (order.length !== drawn.order.length || order.some((id, i) => id !== drawn.order[i])) {
    list.append(...order.map((id) => drawn.els.get(id))); // moves each into place
    drawn.order = order;
  }
  if (nearBottom || mineNew) list.scrollTop = list.scrollHeight;
}

function renderControls(s, v) {
  const me = s.me.user_id;
  const writer = can(v.room, me, "write");
  const streaming = Object.keys(v.streams).length > 0;
  $("stop-btn").disabled = !streaming;
  $("regenerate-btn").disabled = !writer || streaming || Boolean(s.busy.regenerate) || !regenerateTarget(drawn.sorted);
  $("send-btn").disabled = !writer;
  $("upload-btn").disabled = !can(v.room, me, "upload");
  $("attach-btn").disabled = !can(v.room, me, "upload");
  // Asking aloud answers in private chats (one member).
  $("mic-btn").hidden = !(writer && v.room.members.length === 1 && window.MediaRecorder);
  const input = $("message-input");
  input.disabled = !writer;
  input.placeholder = !writer
    ? "You can read this room but not write in it."
    : v.room.assistant_mode === "mention"
      ? "Write a message; mention @assistant to ask it. Enter sends, Shift+Enter adds a line."
      : "Write a message. Enter sends, Shift+Enter adds a line.";
  const sendError = s.errors.send;
  if (sendError) setText($("composer-status"), `Not sent: ${sendError} Your text is back in the box.`);
}
