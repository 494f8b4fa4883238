// Parlour browser client: screens, room state, and the Socket.IO event handlers.

import * as api from "./api.js";
import { describeError } from "./api.js";
import { call, callWithRetry, connect, notify } from "./socket.js";
import { h, renderMessage } from "./render.js";

const $ = (id) => document.getElementById(id);
const root = $("root");

let state = null; // set by startApp, cleared on log-out

function newState(user) {
  return {
    user,
    socket: null,
    models: [],
    rooms: new Map(), // room_id -> RoomState
    current: null, // the room on screen
    els: new Map(), // message_id -> element, for the room on screen
    dirty: new Set(), // streaming message ids waiting for a render
    renderTimer: null,
    uploads: [], // upload entries, newest last
    typingSentFor: null, // room id we told "is typing" to
    typingStopTimer: null,
    lastTypingAt: 0,
    unauthorizedStreak: 0,
    recovering: null,
    readMarks: loadReadMarks(user.user_id),
  };
}

function roomState(room) {
  return {
    room,
    members: new Map((room.members || []).map((m) => [m.user_id, m])),
    online: new Set(),
    typing: new Map(), // user_id -> timer
    messages: new Map(), // message_id -> message
    streams: new Map(), // message_id -> {text, applied, pending, model, reply_to, created_at, since}
    lastSeq: 0,
    loaded: false, // holds the room's recent history (a full join happened)
    invited: false,
  };
}

// ---- small UI helpers ----------------------------------------------------------------

function toast(text, detail = "", kind = "error") {
  const box = $("toasts");
  const item = h(`div.toast.${kind}`, {},
    h("span.toast-text", { text }, detail ? h("span.toast-detail", { text: detail }) : null),
    h("button", { type: "button", text: "Dismiss", onclick: () => item.remove() }));
  box.append(item);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? 10000 : 6000);
}

function showError(err, overrides) {
  const { sentence, detail } = describeError(err, overrides);
  toast(sentence, detail);
}

function clone(templateId) {
  return $(templateId).content.cloneNode(true);
}

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function loadReadMarks(userId) {
  try { return JSON.parse(localStorage.getItem(`parlour.read.${userId}`)) || {}; } catch { return {}; }
}

function saveReadMarks() {
  try { localStorage.setItem(`parlour.read.${state.user.user_id}`, JSON.stringify(state.readMarks)); } catch { /* private mode */ }
}

const roomTitle = (room) => (room && room.title) || "Untitled room";

// ---- boot and auth screens ------------------------------------------------------------

async function boot() {
  api.on("token", (token) => {
    if (state && state.socket && state.socket.connected) {
      call(state.socket, "auth_refresh", { token }).catch(() => { /* the next connect uses it anyway */ });
    }
  });
  api.on("expired", () => toLogin("Your session has ended. Please log in again."));
  try {
    const session = await api.refresh(); // the HttpOnly refresh cookie keeps a reload logged in
    startApp(session.user);
  } catch {
    showAuth();
  }
}

// One "Continue with <provider>" link per configured OpenID Connect provider.
async function showSingleSignOn() {
  let names = [];
  try {
    const res = await fetch("/api/v1/auth/providers", { credentials: "same-origin" });
    if (res.ok) names = (await res.json()).providers || [];
  } catch { /* the form still works without SSO */ }
  const box = document.getElementById("sso");
  if (!box || !names.length) return;
  for (const name of names) {
    const link = document.createElement("a");
    link.className = "button";
    link.href = `/api/v1/auth/${encodeURIComponent(name)}/login?next=/`;
    link.textContent = `Continue with ${name.charAt(0).toUpperCase()}${name.slice(1)}`;
    box.appendChild(link);
  }
  box.hidden = false;
}

function showAuth(message = "") {
  root.replaceChildren(clone("tpl-auth"));
  document.title = "Parlour: log in";
  const form = $("auth-form");
  const err = $("auth-error");
  err.textContent = message;
  showSingleSignOn();
  let enterFromName = false;
  $("auth-name").addEventListener("keydown", (e) => { enterFromName = e.key === "Enter"; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const action = e.submitter && e.submitter.dataset.action
      ? (enterFromName && e.submitter.id === "login-btn" ? "signup" : e.submitter.dataset.action)
      : "login";
    enterFromName = false;
    const email = $("auth-email").value.trim();
    const password = $("auth-password").value;
    const name = $("auth-name").value.trim();
    if (!email || !password) {
      err.textContent = "Please enter your email and password.";
      (email ? $("auth-password") : $("auth-email")).focus();
      return;
    }
    if (action === "signup" && !name) {
      err.textContent = "Please enter your name to sign up.";
      $("auth-name").focus();
      return;
    }
    err.textContent = action === "signup" ? "Creating your account…" : "Logging in…";
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      const session = action === "signup"
        ? await api.signup(email, password, name)
        : await api.login(email, password);
      startApp(session.user);
    } catch (ex) {
      const { sentence, detail } = describeError(ex, {
        unauthorized: "That email and password do not match an account.",
        conflict: "An account with this email already exists. Try logging in.",
        forbidden: "This email is not allowed to use this server. Ask its administrator.",
        invalid_payload: "Please check the email address, password and name.",
        rate_limited: "Too many attempts. Please wait a minute and try again.",
      });
      err.textContent = detail && ex.code === "invalid_payload" ? `${sentence} (${detail})` : sentence;
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  });
  $("auth-email").focus();
}

function teardown() {
  if (!state) return;
  clearTimeout(state.renderTimer);
  clearTimeout(state.typingStopTimer);
  for (const rs of state.rooms.values()) for (const t of rs.typing.values()) clearTimeout(t);
  if (state.socket) {
    state.socket.removeAllListeners();
    state.socket.disconnect();
  }
  state = null;
}

function toLogin(message) {
  teardown();
  api.forget();
  showAuth(message);
}

async function logout() {
  teardown();
  try { await api.logout(); } catch { /* cookies expire anyway */ }
  history.replaceState(null, "", location.pathname);
  showAuth("You are logged out.");
}

// ---- app screen ----------------------------------------------------------------------

async function startApp(user) {
  teardown();
  state = newState(user);
  const s = state;
  root.replaceChildren(clone("tpl-app"));
  document.title = "Parlour";
  $("me-name").textContent = user.name || user.email;
  $("me-name").title = `Logged in as ${user.email}`;
  wireAppControls();
  setConn("Connecting…");

  const [rooms, models] = await Promise.all([
    api.listRooms().catch((err) => { showError(err); return []; }),
    api.listModels(),
  ]);
  if (state !== s) return; // logged out meanwhile
  s.models = models;
  for (const room of rooms) addRoom(room);
  renderRoomList();

  s.socket = connect();
  wireSocket(s.socket);
  openRoomFromHash();
}

function wireAppControls() {
  $("logout-btn").addEventListener("click", logout);
  $("new-room-btn").addEventListener("click", createRoom);
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); sendMessage(); });
  const input = $("message-input");
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      sendMessage();
    }
  });
  input.addEventListener("input", typingActivity);
  input.addEventListener("blur", stopTyping);
  $("stop-btn").addEventListener("click", stopGeneration);
  $("regenerate-btn").addEventListener("click", regenerate);
  $("upload-btn").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (e) => {
    const files = Array.from(e.target.files || []);
    e.target.value = "";
    if (files.length) uploadFiles(files);
  });
  $("invite-btn").addEventListener("click", () => toggleInvite());
  $("invite-cancel").addEventListener("click", () => toggleInvite(false));
  $("invite-form").addEventListener("submit", (e) => { e.preventDefault(); invite(); });
  $("model-select").addEventListener("change", (e) => updateRoom({ model: e.target.value }));
  $("mode-select").addEventListener("change", (e) => updateRoom({ assistant_mode: e.target.value }));
  const titleInput = $("room-title-input");
  titleInput.addEventListener("change", () => {
    const title = titleInput.value.trim();
    if (title && title !== roomTitle(currentRoom() && currentRoom().room)) updateRoom({ title });
  });
  titleInput.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); titleInput.blur(); } });
}

window.addEventListener("hashchange", () => { if (state) openRoomFromHash(); });
document.addEventListener("visibilitychange", () => {
  if (state && !document.hidden && state.current) markRead(currentRoom());
});

function setConn(text) {
  const el = $("conn-status");
  if (el) el.textContent = text;
}

// ---- socket --------------------------------------------------------------------------

function wireSocket(socket) {
  socket.on("connect", () => {
    state.unauthorizedStreak = 0;
    setConn("");
    for (const rs of state.rooms.values()) joinRoom(rs.room.room_id);
  });
  socket.on("disconnect", (reason) => {
    setConn("Reconnecting…");
    if (reason === "io server disconnect") recover(); // kicked: refresh, then reconnect
  });
  socket.on("connect_error", (err) => {
    const unauthorized = err && (err.message === "unauthorized" || (err.data && err.data.code === "unauthorized"));
    if (unauthorized) {
      state.unauthorizedStreak += 1;
      if (state.unauthorizedStreak > 2) { toLogin("Your session has ended. Please log in again."); return; }
      recover();
    } else {
      setConn("Reconnecting…");
      if (!socket.active) setTimeout(() => state && state.socket === socket && socket.connect(), 2000);
    }
  });
  socket.on("session_expired", () => { setConn("Renewing session…"); recover(); });
  socket.on("error", (e) => showError(e));

  socket.on("room_created", ({ room }) => {
    const known = state.rooms.has(room.room_id);
    const rs = addRoom(room);
    rs.loaded = rs.loaded || !room.last_seq;
    if (!known && socket.connected) joinRoom(room.room_id); // created in another tab
    renderRoomList();
  });
  socket.on("room_joined", (data) => applyRoomInfo(data));
  socket.on("room_updated", ({ room }) => {
    const rs = state.rooms.get(room.room_id);
    if (!rs) return;
    rs.room = room;
    for (const m of room.members || []) rs.members.set(m.user_id, m);
    renderRoomList();
    if (state.current === room.room_id) renderRoomHeader();
  });
  socket.on("room_deleted", ({ room_id }) => removeRoom(room_id, "This room was deleted, or you were removed from it."));
  socket.on("room_invited", ({ room }) => {
    const known = state.rooms.has(room.room_id);
    const rs = addRoom(room);
    if (!known) {
      rs.invited = true;
      toast(`You were added to “${roomTitle(room)}”.`, "", "info");
      if (socket.connected) joinRoom(room.room_id);
    }
    renderRoomList();
  });
  socket.on("user_joined", ({ room_id, user }) => {
    const rs = state.rooms.get(room_id);
    if (!rs || !user) return;
    rs.online.add(user.user_id);
    if (!rs.members.has(user.user_id)) rs.members.set(user.user_id, { ...user, role: "guest" });
    if (state.current === room_id) renderPresence();
  });
  socket.on("user_left", ({ room_id, user }) => {
    const rs = state.rooms.get(room_id);
    if (!rs || !user) return;
    rs.online.delete(user.user_id);
    setTyping(rs, user.user_id, false);
    if (state.current === room_id) renderPresence();
  });
  socket.on("user_typing", ({ room_id, user_id, is_typing }) => {
    const rs = state.rooms.get(room_id);
    if (rs && user_id !== state.user.user_id) setTyping(rs, user_id, is_typing);
  });
  socket.on("message_received", ({ message }) => upsertMessage(message));
  socket.on("assistant_started", (e) => {
    const rs = state.rooms.get(e.room_id);
    if (!rs) return;
    const stream = ensureStream(rs, e.message_id);
    stream.model = e.model;
    stream.reply_to = e.reply_to;
    renderStream(rs, e.message_id);
  });
  socket.on("assistant_delta", (e) => {
    const rs = state.rooms.get(e.room_id);
    if (!rs) return;
    const done = rs.messages.get(e.message_id);
    if (done && done.status !== "streaming") return; // a late delta after the final message
    applyDelta(ensureStream(rs, e.message_id), e.seq, e.delta);
    scheduleStreamRender(e.room_id, e.message_id);
  });
  socket.on("assistant_done", (e) => {
    const rs = state.rooms.get(e.room_id);
    if (!rs) return;
    if (e.message) {
      upsertMessage(e.message);
    } else {
      const stream = rs.streams.get(e.message_id);
      rs.streams.delete(e.message_id);
      if (stream) upsertMessage({ message_id: e.message_id, room_id: e.room_id, role: "assistant",
        content: stream.text, status: e.finish_reason === "stop" ? "complete" : e.finish_reason,
        model: stream.model, reply_to: stream.reply_to, created_at: stream.created_at });
    }
    if (e.finish_reason === "error" && e.room_id === state.current) {
      toast("The assistant could not finish its reply.", "Press Regenerate to try again, or pick another model.");
    }
    if (e.room_id === state.current) updateControls();
  });
  socket.on("document_status", onDocumentStatus);
}

/** After session_expired, an unauthorized connect or a kick: new token, then connect. */
function recover() {
  if (!state || state.recovering) return;
  const s = state;
  s.recovering = api.refresh()
    .then(() => { if (state === s && !s.socket.connected) s.socket.connect(); })
    .catch((err) => {
      if (state !== s) return;
      if (err.code === "unauthorized") toLogin("Your session has ended. Please log in again.");
      else setTimeout(() => { if (state === s && !s.socket.connected) s.socket.connect(); }, 3000);
    })
    .finally(() => { s.recovering = null; });
}

// ---- rooms ---------------------------------------------------------------------------

function addRoom(room) {
  let rs = state.rooms.get(room.room_id);
  if (rs) {
    rs.room = room;
    for (const m of room.members || []) rs.members.set(m.user_id, m);
    return rs;
  }
  rs = roomState(room);
  state.rooms.set(room.room_id, rs);
  if (state.readMarks[room.room_id] === undefined) {
    state.readMarks[room.room_id] = room.last_seq || 0; // first sight: nothing is "new" yet
    saveReadMarks();
  }
  return rs;
}

function removeRoom(roomId, notice) {
  if (!state.rooms.delete(roomId)) return;
  delete state.readMarks[roomId];
  saveReadMarks();
  if (state.current === roomId) {
    state.current = null;
    location.hash = "";
    renderRoomView();
    if (notice) toast(notice, "", "info");
  }
  renderRoomList();
}

const currentRoom = () => (state && state.current ? state.rooms.get(state.current) : null);

function knownSeq(rs) {
  return Math.max(rs.lastSeq, rs.room.last_seq || 0);
}

function unreadCount(rs) {
  return Math.max(0, knownSeq(rs) - (state.readMarks[rs.room.room_id] || 0));
}

function activity(rs) {
  let t = Date.parse(rs.room.last_activity_at || rs.room.updated_at || rs.room.created_at) || 0;
  for (const m of rs.messages.values()) t = Math.max(t, Date.parse(m.created_at) || 0);
  return t;
}

function renderRoomList() {
  const list = $("room-list");
  if (!list) return;
  const rooms = [...state.rooms.values()].sort((a, b) => activity(b) - activity(a));
  list.replaceChildren(...rooms.map((rs) => {
    const id = rs.room.room_id;
    const count = id === state.current ? 0 : unreadCount(rs);
    const unread = count > 0 || (rs.invited && id !== state.current);
    const badge = unread
      ? h("span.unread-dot", { "aria-hidden": "true", text: count > 0 ? String(count) : "new" })
      : null;
    return h("li", {},
      h("a", {
        href: `#/room/${encodeURIComponent(id)}`,
        "aria-current": id === state.current ? "page" : null,
        dataset: { roomId: id, unread: unread ? "true" : "false" },
      },
      h("span.room-name", { text: roomTitle(rs.room) }),
      badge,
      unread ? h("span.sr-only", { text: count > 0 ? `, ${count} unread` : ", new" }) : null));
  }));
  $("rooms-empty").hidden = rooms.length > 0;
  const unreadRooms = rooms.filter((rs) => rs.room.room_id !== state.current && (unreadCount(rs) > 0 || rs.invited)).length;
  document.title = unreadRooms ? `(${unreadRooms}) Parlour` : "Parlour";
}

async function createRoom() {
  const btn = $("new-room-btn");
  btn.disabled = true;
  try {
    const { room } = await call(state.socket, "create_room", {});
    const rs = addRoom(room);
    rs.loaded = true; // brand new: nothing to load
    rs.online.add(state.user.user_id);
    renderRoomList();
    location.hash = `#/room/${encodeURIComponent(room.room_id)}`;
    setTimeout(() => { const t = $("room-title-input"); if (t && !t.hidden) t.select(); }, 0);
  } catch (err) {
    showError(err);
  } finally {
    btn.disabled = false;
  }
}

/** join_room: full history when the room is not loaded, else only what was missed. */
async function joinRoom(roomId) {
  const rs = state.rooms.get(roomId);
  if (!rs || !state.socket.connected) return;
  const s = state;
  const payload = { room_id: roomId };
  if (rs.loaded) {
    let since = rs.lastSeq;
    for (const st of rs.streams.values()) since = Math.min(since, st.since);
    payload.since_seq = Math.max(0, since);
  } else if (roomId !== state.current) {
    payload.since_seq = rs.room.last_seq || 0; // not on screen: only news, for unread markers
  }
  try {
    const data = await call(state.socket, "join_room", payload);
    if (state !== s) return;
    if (payload.since_seq === undefined) rs.loaded = true;
    applyRoomInfo(data);
    for (const m of data.messages || []) upsertMessage(m);
    if (data.active_stream) {
      const a = data.active_stream;
      const stream = ensureStream(rs, a.message_id);
      if (a.seq > stream.applied) {
        stream.text = a.content || "";
        stream.applied = a.seq;
        for (const k of stream.pending.keys()) if (k <= a.seq) stream.pending.delete(k);
        drain(stream);
      }
      renderStream(rs, a.message_id);
    }
    if (roomId === state.current) { renderRoomHeader(); updateControls(); }
  } catch (err) {
    if (state !== s) return;
    if (err.code === "not_found" || err.code === "forbidden") {
      removeRoom(roomId, "This room is gone, or you no longer have access to it.");
    } else if (roomId === state.current) {
      showError(err);
    }
  }
}

function applyRoomInfo(data) {
  if (!data || !data.room) return;
  const rs = addRoom(data.room);
  if (Array.isArray(data.members)) {
    for (const m of data.members) if (m && m.user_id) rs.members.set(m.user_id, m);
  }
  if (Array.isArray(data.online)) rs.online = new Set(data.online);
  rs.online.add(state.user.user_id);
  renderRoomList();
  if (state.current === rs.room.room_id) { renderRoomHeader(); renderPresence(); }
}

function openRoomFromHash() {
  const m = /^#\/room\/(.+)$/.exec(location.hash);
  const id = m ? decodeURIComponent(m[1]) : null;
  if (id && !state.rooms.has(id)) {
    // A link to a room we have not listed (a public room): try to join it.
    if (!state.socket || !state.socket.connected) {
      if (state.socket) state.socket.once("connect", () => { if (state) openRoomFromHash(); });
      return;
    }
    call(state.socket, "join_room", { room_id: id })
      .then((data) => { addRoom(data.room); openRoomFromHash(); })
      .catch((err) => { showError(err); location.hash = ""; });
    return;
  }
  openRoom(id);
}

function openRoom(roomId) {
  if (state.current !== roomId) stopTyping();
  state.current = roomId;
  toggleInvite(false);
  const rs = currentRoom();
  if (rs) {
    rs.invited = false;
    if (!rs.loaded) joinRoom(roomId);
    markRead(rs);
  }
  renderRoomView();
  renderRoomList();
  if (rs && window.matchMedia("(min-width: 721px)").matches) $("message-input").focus();
}

function markRead(rs) {
  if (!rs || document.hidden) return;
  const seq = knownSeq(rs);
  if ((state.readMarks[rs.room.room_id] || 0) < seq) {
    state.readMarks[rs.room.room_id] = seq;
    saveReadMarks();
  }
}

// ---- room view -----------------------------------------------------------------------

function renderRoomView() {
  const rs = currentRoom();
  $("no-room").hidden = Boolean(rs);
  $("room-pane").hidden = !rs;
  $("room-view").setAttribute("aria-label", rs ? `Room: ${roomTitle(rs.room)}` : "No room open");
  const list = $("message-list");
  list.replaceChildren();
  state.els.clear();
  if (!rs) return;
  renderRoomHeader();
  renderPresence();
  for (const msg of sortedMessages(rs)) renderOne(rs, msg.message_id);
  for (const id of rs.streams.keys()) renderOne(rs, id);
  renderUploads();
  updateControls();
  list.scrollTop = list.scrollHeight;
}

function myRole(rs) {
  if (rs.room.owner_id === state.user.user_id) return "owner";
  const me = rs.members.get(state.user.user_id);
  return (me && me.role) || "member";
}

function effectiveMode(rs) {
  return rs.room.assistant_mode || ((rs.room.members || []).length > 1 ? "mention" : "always");
}

const MODE_TEXT = {
  always: "answers every message",
  mention: "answers when @assistant is mentioned",
  off: "is off",
};

function renderRoomHeader() {
  const rs = currentRoom();
  if (!rs) return;
  const room = rs.room;
  const owner = myRole(rs) === "owner";
  const title = roomTitle(room);
  $("room-title").textContent = title;
  $("room-title").hidden = owner;
  const titleInput = $("room-title-input");
  titleInput.hidden = !owner;
  if (document.activeElement !== titleInput) titleInput.value = title;
  $("room-view").setAttribute("aria-label", `Room: ${title}`);
  $("owner-controls").hidden = !owner;

  const mode = effectiveMode(rs);
  if (owner) {
    fillModelSelect(room.model);
    $("mode-select").value = mode;
  }
  const members = (room.members || []).length || rs.members.size;
  const ownerName = (rs.members.get(room.owner_id) || {}).name;
  const bits = [`${members} member${members === 1 ? "" : "s"}`];
  if (!owner && ownerName) bits.push(`owner ${ownerName}`);
  if (!owner) bits.push(`model ${room.model || "default"}`, `the assistant ${MODE_TEXT[mode] || mode}`);
  if (myRole(rs) === "viewer") bits.push("you can read but not write here");
  $("room-info").textContent = bits.join(" · ");

  const input = $("message-input");
  const viewer = myRole(rs) === "viewer";
  input.disabled = viewer;
  input.placeholder = viewer
    ? "You can read this room but not write in it."
    : mode === "mention"
      ? "Write a message; mention @assistant to ask it. Enter sends, Shift+Enter adds a line."
      : "Write a message. Enter sends, Shift+Enter adds a line.";
}

function fillModelSelect(current) {
  const select = $("model-select");
  if (document.activeElement === select) return; // do not rebuild under the user's hands
  const options = [];
  if (!current) options.push(h("option", { value: "", text: "Server default", disabled: true }));
  const seen = new Set();
  for (const m of state.models) {
    seen.add(m.id);
    const label = `${m.name || m.id} (${m.provider || m.id.split(":")[0]})${m.available === false ? ", no key configured" : ""}`;
    options.push(h("option", { value: m.id, text: label, disabled: m.available === false && m.id !== current }));
  }
  if (current && !seen.has(current)) options.unshift(h("option", { value: current, text: current }));
  select.replaceChildren(...options);
  select.value = current || "";
}

function renderPresence() {
  const rs = currentRoom();
  if (!rs) return;
  const names = [...rs.online].map((id) => {
    const m = rs.members.get(id);
    const name = (m && m.name) || "Someone";
    return id === state.user.user_id ? `${name} (you)` : name;
  });
  $("online-list").replaceChildren(
    h("span.online-dot", { "aria-hidden": "true" }),
    `Online: ${names.length ? names.join(", ") : "nobody else"}`);
  renderTyping(rs);
}

function setTyping(rs, userId, isTyping) {
  clearTimeout(rs.typing.get(userId));
  rs.typing.delete(userId);
  if (isTyping) rs.typing.set(userId, setTimeout(() => setTyping(rs, userId, false), 8000));
  if (state && state.current === rs.room.room_id) renderTyping(rs);
}

function renderTyping(rs) {
  const names = [...rs.typing.keys()].map((id) => (rs.members.get(id) || {}).name || "Someone");
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  $("typing-line").textContent = text;
}

function toggleInvite(show) {
  const form = $("invite-form");
  if (!form) return;
  const open = show === undefined ? form.hidden : show;
  form.hidden = !open;
  $("invite-btn").setAttribute("aria-expanded", String(open));
  if (open) $("invite-email").focus();
}

async function invite() {
  const rs = currentRoom();
  const email = $("invite-email").value.trim();
  if (!rs) return;
  if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
    toast("Please enter the email address of the person to invite.");
    $("invite-email").focus();
    return;
  }
  try {
    const { room } = await call(state.socket, "invite", { room_id: rs.room.room_id, email });
    if (room) addRoom(room);
    $("invite-email").value = "";
    toggleInvite(false);
    toast(`Invited ${email}. They will see this room in their list.`, "", "info");
    renderRoomHeader();
  } catch (err) {
    showError(err, {
      not_found: "There is no account with that email yet. They can sign up, then you can invite them.",
      forbidden: "Only the room's owner can invite people.",
      conflict: "That person is already in this room.",
    });
  }
}

async function updateRoom(fields) {
  const rs = currentRoom();
  if (!rs) return;
  try {
    const { room } = await call(state.socket, "update_room", { room_id: rs.room.room_id, ...fields });
    if (room) addRoom(room);
  } catch (err) {
    showError(err, { invalid_payload: "That setting was not accepted." });
  }
  renderRoomHeader(); // shows the room's real settings, whichever way it went
  renderRoomList();
}

// ---- messages ------------------------------------------------------------------------

function sortedMessages(rs) {
  return [...rs.messages.values()].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity));
}

function upsertMessage(msg) {
  if (!msg || !msg.room_id || !msg.message_id) return;
  const rs = state.rooms.get(msg.room_id);
  if (!rs) return;
  const old = rs.messages.get(msg.message_id);
  // Never let an older "streaming" snapshot replace a finished message.
  if (old && old.status !== "streaming" && msg.status === "streaming") return;
  rs.messages.set(msg.message_id, { ...old, ...msg });
  if (typeof msg.seq === "number") {
    rs.lastSeq = Math.max(rs.lastSeq, msg.seq);
    if (msg.seq > (rs.room.last_seq || 0)) rs.room.last_seq = msg.seq;
  }
  if (msg.status === "streaming") {
    const stream = ensureStream(rs, msg.message_id);
    if (!stream.text && msg.content) stream.text = msg.content;
    if (typeof msg.seq === "number") stream.since = Math.min(stream.since, msg.seq - 1);
  } else {
    rs.streams.delete(msg.message_id);
    state.dirty.delete(msg.message_id);
  }
  if (rs.room.room_id === state.current) {
    renderOne(rs, msg.message_id);
    markRead(rs);
    updateControls();
  }
  renderRoomList();
}

function ensureStream(rs, messageId) {
  let st = rs.streams.get(messageId);
  if (!st) {
    st = { text: "", applied: 0, pending: new Map(), model: undefined, reply_to: undefined,
      created_at: new Date().toISOString(), since: rs.lastSeq };
    rs.streams.set(messageId, st);
    if (rs.room.room_id === state.current) updateControls();
  }
  return st;
}

/** Deltas are numbered from 1; apply them in order, holding any that arrive early. */
function applyDelta(stream, seq, delta) {
  if (typeof seq !== "number") { stream.text += delta || ""; return; }
  if (seq <= stream.applied) return;
  stream.pending.set(seq, delta || "");
  drain(stream);
}

function drain(stream) {
  while (stream.pending.has(stream.applied + 1)) {
    stream.applied += 1;
    stream.text += stream.pending.get(stream.applied);
    stream.pending.delete(stream.applied);
  }
}

function scheduleStreamRender(roomId, messageId) {
  if (roomId !== state.current) return;
  state.dirty.add(messageId);
  if (state.renderTimer) return;
  const s = state;
  state.renderTimer = setTimeout(() => {
    s.renderTimer = null;
    const rs = s.rooms.get(s.current);
    for (const id of s.dirty) if (rs && rs.streams.has(id)) renderOne(rs, id);
    s.dirty.clear();
  }, 80);
}

function renderStream(rs, messageId) {
  if (rs.room.room_id === state.current) { renderOne(rs, messageId); updateControls(); }
}

/** Draw one message (or streaming reply) of the room on screen, in seq order. */
function renderOne(rs, messageId) {
  const list = $("message-list");
  const stream = rs.streams.get(messageId);
  const stored = rs.messages.get(messageId);
  let msg = stored;
  if (stream) {
    msg = { message_id: messageId, room_id: rs.room.room_id, role: "assistant", author: null,
      model: stream.model, reply_to: stream.reply_to, created_at: stream.created_at,
      ...stored, status: "streaming" };
  }
  if (!msg) return;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  let el = state.els.get(messageId);
  const isNew = !el;
  el = renderMessage(el, msg, { me: state.user.user_id, streamingText: stream ? stream.text : undefined });
  el._key = [typeof msg.seq === "number" && msg.status !== "streaming" ? msg.seq : Infinity, Date.parse(msg.created_at) || 0];
  if (isNew) state.els.set(messageId, el);
  placeInOrder(list, el);
  if (nearBottom || (isNew && msg.author && msg.author.user_id === state.user.user_id)) {
    list.scrollTop = list.scrollHeight;
  }
}

const before = (a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

function placeInOrder(list, el) {
  const prev = el.previousElementSibling;
  const next = el.nextElementSibling;
  if (el.parentNode === list && (!prev || !before(el._key, prev._key)) && (!next || !before(next._key, el._key))) {
    return; // already in place
  }
  let after = null;
  for (const child of list.children) {
    if (child !== el && before(el._key, child._key)) { after = child; break; }
  }
  list.insertBefore(el, after);
}

function updateControls() {
  const rs = currentRoom();
  if (!rs) return;
  const streaming = rs.streams.size > 0;
  const viewer = myRole(rs) === "viewer";
  $("stop-btn").disabled = !streaming;
  $("regenerate-btn").disabled = viewer || streaming || !regenerateTarget(rs);
  $("send-btn").disabled = viewer;
  $("upload-btn").disabled = viewer;
}

/** The user message the newest answer replied to (or the newest user message). */
function regenerateTarget(rs) {
  const msgs = sortedMessages(rs);
  for (let i = msgs.length - 1; i >= 0; i--) {
    const m = msgs[i];
    if (m.role === "assistant" && m.reply_to) return m.reply_to;
    if (m.role === "user") return m.message_id;
  }
  return null;
}

async function sendMessage() {
  const rs = currentRoom();
  const input = $("message-input");
  const content = input.value;
  if (!rs || !content.trim()) return;
  const payload = { room_id: rs.room.room_id, content, client_msg_id: randomId() };
  input.value = "";
  stopTyping();
  const status = $("composer-status");
  status.textContent = "Sending…";
  try {
    const { message } = await callWithRetry(state.socket, "send_message", payload);
    upsertMessage(message);
    status.textContent = "";
  } catch (err) {
    status.textContent = "Not sent. Your text is back in the box.";
    if (!input.value) input.value = content;
    showError(err, { forbidden: "You cannot write in this room." });
  }
}

async function stopGeneration() {
  const rs = currentRoom();
  if (!rs) return;
  const payload = { room_id: rs.room.room_id };
  const first = rs.streams.keys().next();
  if (!first.done) payload.message_id = first.value;
  try {
    await call(state.socket, "stop_generation", payload);
  } catch (err) {
    showError(err);
  }
}

async function regenerate() {
  const rs = currentRoom();
  const target = rs && regenerateTarget(rs);
  if (!target) return;
  $("regenerate-btn").disabled = true;
  try {
    await call(state.socket, "regenerate", { room_id: rs.room.room_id, message_id: target });
  } catch (err) {
    showError(err);
  } finally {
    updateControls();
  }
}

// ---- typing (our own) ----------------------------------------------------------------

function typingActivity() {
  const rs = currentRoom();
  if (!rs) return;
  const now = Date.now();
  if (state.typingSentFor !== rs.room.room_id || now - state.lastTypingAt > 3000) {
    notify(state.socket, "typing", { room_id: rs.room.room_id, is_typing: true });
    state.typingSentFor = rs.room.room_id;
    state.lastTypingAt = now;
  }
  clearTimeout(state.typingStopTimer);
  state.typingStopTimer = setTimeout(stopTyping, 4000);
}

function stopTyping() {
  if (!state) return;
  clearTimeout(state.typingStopTimer);
  if (state.typingSentFor) {
    notify(state.socket, "typing", { room_id: state.typingSentFor, is_typing: false });
    state.typingSentFor = null;
  }
}

// ---- uploads -------------------------------------------------------------------------

const DONE_STATES = new Set(["ready", "complete", "completed", "done", "indexed", "processed"]);
const FAILED_STATES = new Set(["error", "failed"]);

function uploadFiles(files) {
  const rs = currentRoom();
  if (!rs) return;
  const roomId = rs.room.room_id;
  const entries = files.map((f) => ({ room_id: roomId, name: f.name, phase: "uploading", progress: 0, keys: [], error: "" }));
  state.uploads.push(...entries);
  renderUploads();
  const s = state;
  api.upload(roomId, files, (fraction) => {
    for (const e of entries) e.progress = fraction;
    renderUploads();
  }).then((records) => {
    if (state !== s) return;
    records.forEach((rec, i) => {
      const entry = entries[i] || entries.find((e) => e.name === rec.filename);
      if (!entry) return;
      entry.keys = [rec.file_id, rec.document_id].filter(Boolean);
      if (rec.filename) entry.name = rec.filename;
      entry.phase = "processing";
      entry.progress = 0;
      // An early document_status may have made a placeholder entry: fold it in.
      const early = state.uploads.find((u) => u !== entry && u.placeholder && u.keys.some((k) => entry.keys.includes(k)));
      if (early) {
        Object.assign(entry, { phase: early.phase, progress: early.progress, error: early.error });
        state.uploads.splice(state.uploads.indexOf(early), 1);
      } else if (rec.status) {
        applyDocStatus(entry, rec.status, rec.progress, rec.error);
      }
    });
    for (const e of entries) if (e.phase === "uploading") { e.phase = "processing"; e.progress = 0; }
    renderUploads();
  }).catch((err) => {
    if (state !== s) return;
    const { sentence } = describeError(err, {
      payload_too_large: "This file is too large to upload.",
      invalid_payload: "This kind of file cannot be uploaded.",
    });
    for (const e of entries) { e.phase = "failed"; e.error = sentence; }
    renderUploads();
    showError(err, { payload_too_large: "That file is too large to upload." });
  });
}

function applyDocStatus(entry, status, progress, error) {
  const s = String(status || "").toLowerCase();
  if (DONE_STATES.has(s)) { entry.phase = "ready"; entry.progress = 1; }
  else if (FAILED_STATES.has(s)) { entry.phase = "failed"; entry.error = error || "Could not read this file."; }
  else {
    entry.phase = "processing";
    const p = Number(progress);
    if (Number.isFinite(p)) entry.progress = p > 1 ? p / 100 : p; // 0..1 (or a percentage)
  }
}

function onDocumentStatus(e) {
  if (!e || !e.document_id) return;
  let entry = state.uploads.find((u) => u.keys.includes(e.document_id));
  if (!entry) {
    entry = { room_id: null, name: "Document", phase: "processing", progress: 0, keys: [e.document_id], error: "", placeholder: true };
    state.uploads.push(entry);
  }
  applyDocStatus(entry, e.status, e.progress, e.error);
  renderUploads();
}

function renderUploads() {
  const list = $("upload-list");
  if (!list) return;
  state.uploads = state.uploads.slice(-12);
  const shown = state.uploads.filter((u) => u.room_id === null || u.room_id === state.current);
  list.hidden = shown.length === 0;
  list.replaceChildren(...shown.map((u) => {
    const pct = Math.round(Math.min(1, Math.max(0, u.progress || 0)) * 100);
    const label = u.phase === "uploading" ? `Uploading ${pct}%`
      : u.phase === "processing" ? `Reading for the assistant ${pct}%`
        : u.phase === "ready" ? "Ready: the assistant can use it"
          : `Failed: ${u.error || "unknown error"}`;
    const bar = u.phase === "failed" ? h("span") : h("progress", { max: "100", value: String(pct), "aria-label": `${u.name} progress` });
    return h("li", { dataset: { phase: u.phase } },
      h("span.file-name", { text: u.name, title: u.name }),
      bar,
      h(`span.upload-state.${u.phase === "failed" ? "failed" : u.phase === "ready" ? "done" : "working"}`, { text: label }));
  }));
}

boot();
