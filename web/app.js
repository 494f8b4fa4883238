// Parlour browser client: boot, the socket, routing and the render loop. State lives in
// the store (lib/store.js) and changes only through pure updates (lib/update.js); every
// server event goes through the one table in lib/events.js; views/ draw the state.

import * as api from "./api.js";
import { onServerEvent, SERVER_EVENTS } from "./lib/events.js";
import { createStore } from "./lib/store.js";
import * as u from "./lib/update.js";
import { makeActions } from "./actions.js";
import { call, connect } from "./socket.js";
import { showAuth } from "./views/auth.js";
import { mountApp } from "./views/index.js";
import { makePlayer } from "./audio/player.js";

const root = document.getElementById("root");
let session = null; // {store, socket, actions, stop()} while logged in

// ---- routes: the address names the page ------------------------------------------

export function parseHash(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "room" && parts[1]) return { page: "rooms", roomId: parts[1], panel: parts[2] || null };
  if (["documents", "public", "usage"].includes(parts[0])) return { page: parts[0], roomId: null, panel: null };
  return { page: "rooms", roomId: null, panel: null };
}

export function routeHash({ page, roomId, panel }) {
  if (page === "rooms" && roomId) return `#/room/${encodeURIComponent(roomId)}${panel ? `/${panel}` : ""}`;
  return page === "rooms" ? "" : `#/${page}`;
}

// ---- read marks survive reloads --------------------------------------------------

const marksKey = (userId) => `parlour.read.${userId}`;
function loadReadMarks(userId) {
  try { return JSON.parse(localStorage.getItem(marksKey(userId))) || {}; } catch { return {}; }
}
function saveReadMarks(userId, marks) {
  try { localStorage.setItem(marksKey(userId), JSON.stringify(marks)); } catch { /* private mode */ }
}

// ---- boot and session --------------------------------------------------------------

async function boot() {
  api.on("token", (token) => {
    const socket = session && session.socket;
    if (socket && socket.connected) call(socket, "auth_refresh", { token }).catch(() => { /* the next connect uses it */ });
  });
  api.on("expired", () => toLogin("Your session has ended. Please log in again."));
  window.addEventListener("hashchange", () => { if (session) session.actions.navigate(parseHash(location.hash)); });
  document.addEventListener("visibilitychange", () => { if (session) session.actions.visible(!document.hidden); });
  try {
    const s = await api.refresh(); // the HttpOnly refresh cookie keeps a reload logged in
    startApp(s.user);
  } catch {
    showAuth(root, "", startApp);
  }
}

function toLogin(message) {
  if (session) session.stop();
  session = null;
  api.forget();
  showAuth(root, message, startApp);
}

async function logout() {
  if (session) session.stop();
  session = null;
  try { await api.logout(); } catch { /* cookies expire anyway */ }
  history.replaceState(null, "", location.pathname);
  showAuth(root, "You are logged out.", startApp);
}

async function startApp(user) {
  if (session) session.stop();
  const store = createStore(u.initialState(user, loadReadMarks(user.user_id)), {
    onError: (err, update) => console.error("parlour: update failed", update && update.name, err),
  });
  const me = { store, socket: null, actions: null, stopped: false, player: makePlayer() };
  me.actions = makeActions(store, () => me.socket);
  session = me;
  const render = mountApp(root, store, me.actions, { logout, player: me.player });

  // Draw at most once per animation frame (or soon, in a hidden tab where frames stop).
  let drawn = store.get();
  let scheduled = false;
  const draw = () => {
    scheduled = false;
    if (me.stopped) return;
    const s = store.get();
    render(s, drawn);
    drawn = s;
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    if (document.hidden) setTimeout(draw, 200); else requestAnimationFrame(draw);
  };
  store.subscribe((s, prev) => {
    schedule();
    if (s.readMarks !== prev.readMarks) saveReadMarks(user.user_id, s.readMarks);
    if (s.route !== prev.route) {
      const hash = routeHash(s.route);
      if (hash !== location.hash && !(hash === "" && location.hash === "")) {
        history.pushState(null, "", hash || location.pathname);
      }
    }
    me.actions.reconcile(s);
  });
  me.stop = () => {
    me.stopped = true;
    me.actions.stopTyping();
    if (me.socket) { me.socket.removeAllListeners(); me.socket.disconnect(); }
    me.player.stop();
  };
  render(store.get(), null);
  store.apply(u.visibility, !document.hidden);

  const [rooms, models] = await Promise.all([
    api.listRooms().catch((err) => { store.apply(u.notice, api.serverSentence(err)); return []; }),
    api.listModels(),
  ]);
  if (me.stopped) return;
  store.apply(u.modelsLoaded, models);
  store.apply(u.roomsListed, rooms);
  me.actions.navigate(parseHash(location.hash));
  me.socket = connect();
  wireSocket(me, me.socket);
}

// ---- the socket --------------------------------------------------------------------

function wireSocket(me, socket) {
  const { store, actions } = me;
  let unauthorized = 0;
  let wasConnected = false;
  let recovering = null;

  // After session_expired, an unauthorized connect or a kick: a new token, then connect.
  const recover = () => {
    if (recovering || me.stopped) return;
    recovering = api.refresh()
      .then(() => { if (!me.stopped && !socket.connected) socket.connect(); })
      .catch((err) => {
        if (me.stopped) return;
        if (err.code === "unauthorized") toLogin("Your session has ended. Please log in again.");
        else setTimeout(() => { if (!me.stopped && !socket.connected) socket.connect(); }, 3000);
      })
      .finally(() => { recovering = null; });
  };

  socket.on("connect", () => {
    unauthorized = 0;
    store.apply(u.connection, "online"); // rejoins every room (actions.reconcile)
    const s = store.get();
    const id = s.route.roomId;
    if (id && !s.rooms[id]) openUnlisted(me, id); // a link to a public room
    if (wasConnected) {
      // Events sent while we were away are lost: read back what may have changed.
      actions.recheckUploads();
      if (s.documents) actions.loadDocuments();
      if (s.route.panel === "files" && id) actions.loadFiles(id);
    }
    wasConnected = true;
  });
  socket.on("disconnect", (reason) => {
    store.apply(u.connection, "offline");
    if (reason === "io server disconnect") recover();
  });
  socket.on("connect_error", (err) => {
    store.apply(u.connection, "offline");
    if (err && (err.message === "unauthorized" || (err.data && err.data.code === "unauthorized"))) {
      unauthorized += 1;
      if (unauthorized > 2) toLogin("Your session has ended. Please log in again.");
      else recover();
    } else if (!socket.active) {
      setTimeout(() => { if (!me.stopped && !socket.connected) socket.connect(); }, 2000);
    }
  });
  socket.on("session_expired", () => recover());
  for (const name of Object.keys(SERVER_EVENTS)) {
    socket.on(name, (payload) => store.apply(onServerEvent, name, payload, Date.now()));
  }
  // The assistant's voice in the open voice room (binary PCM16, not part of the state).
  socket.on("assistant_audio", (d) => {
    if (d && d.room_id === store.get().route.roomId) me.player.play(d);
  });
  socket.on("assistant_done", (d) => {
    if (d && d.finish_reason === "cancelled" && d.room_id === store.get().route.roomId) me.player.stop();
  });
}

async function openUnlisted(me, roomId) {
  const ok = await me.actions.joinPublic(roomId);
  if (!ok && !me.stopped) {
    me.store.apply(u.notice, "That room does not exist, or you do not have access to it.");
    me.actions.navigate({ page: "rooms" });
  }
}

if (typeof window !== "undefined" && root) boot();
