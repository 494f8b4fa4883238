// What the user does, and the network work it takes: each action calls the server and
// applies pure updates (lib/update.js) to the store. A refused action puts the server's
// sentence next to its control (state.errors[key]) and changes nothing else.

import * as api from "./api.js";
import { serverSentence } from "./api.js";
import { replaySince } from "./lib/messages.js";
import { newEntries, pending } from "./lib/uploads.js";
import * as u from "./lib/update.js";
import { voiceState } from "./lib/voice.js";
import { call, callWithRetry, notify } from "./socket.js";

const JOIN_RETRY_MS = 5000;

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The actions of a signed-in page: `store` holds the state, `io()` is the current socket. */
export function makeActions(store, io) {
  const apply = (...args) => store.apply(...args);
  const joining = new Set(); // room ids with a join_room in flight
  const joinFailedAt = new Map(); // room id → when its last join failed (no hot retry)
  let typingRoom = null;
  let typingAt = 0;
  let typingTimer = null;

  /** Run `work` for control `key`: busy while it runs; the server's sentence if refused. */
  async function attempt(key, work) {
    apply(u.clearError, key);
    apply(u.busy, key, true);
    try {
      return { ok: true, value: await work() };
    } catch (err) {
      apply(u.refused, key, serverSentence(err));
      return { ok: false, error: err };
    } finally {
      apply(u.busy, key, false);
    }
  }

  // ---- joining rooms (driven by state: see reconcile) ------------------------------

  async function join(roomId, full) {
    const socket = io();
    const v = store.get().rooms[roomId];
    if (!v || !socket) return;
    const payload = { room_id: roomId };
    if (v.loaded) payload.since_seq = replaySince(v.lastSeq, v.streams);
    else if (!full) payload.since_seq = v.room.last_seq || 0; // only news, for the unread count
    joining.add(roomId);
    try {
      const data = await call(socket, "join_room", payload);
      joinFailedAt.delete(roomId);
      apply(u.roomJoined, data, { full: payload.since_seq === undefined, now: Date.now() });
      if (data.voice) apply(voiceState, { room_id: roomId, ...data.voice });
    } catch (err) {
      joinFailedAt.set(roomId, Date.now());
      if (err.code === "not_found" || err.code === "forbidden") {
        apply(u.roomRemoved, roomId, "This room is gone, or you no longer have access to it.");
      } else if (store.get().route.roomId === roomId && err.code !== "timeout") {
        apply(u.notice, serverSentence(err));
      }
    } finally {
      joining.delete(roomId);
    }
  }

  /** Join every room this connection is not in (the one on screen with its history). */
  function reconcile(s) {
    const socket = io();
    if (!socket || !socket.connected || s.conn !== "online") return;
    const now = Date.now();
    for (const v of Object.values(s.rooms)) {
      const id = v.room.room_id;
      const wantHistory = id === s.route.roomId && !v.loaded;
      if (joining.has(id) || (v.joined && !wantHistory)) continue;
      if (now - (joinFailedAt.get(id) || 0) < JOIN_RETRY_MS) continue;
      join(id, wantHistory);
    }
  }

  // ---- rooms -----------------------------------------------------------------------

  async function createRoom(fields = {}) {
    const r = await attempt("new-room", () => call(io(), "create_room", fields));
    if (r.ok) apply(u.roomCreatedHere, r.value.room);
    return r.ok;
  }

  async function updateRoom(roomId, fields, key) {
    const r = await attempt(key, () => call(io(), "update_room", { room_id: roomId, ...fields }));
    if (r.ok) apply(u.roomUpdated, r.value.room);
    return r.ok;
  }

  async function invite(roomId, email, role) {
    const r = await attempt("invite", () => call(io(), "invite", { room_id: roomId, email, role }));
    if (r.ok) {
      apply(u.roomUpdated, r.value.room);
      apply(u.notice, `Invited ${email}. They will see this room in their list.`, { kind: "info" });
    }
    return r.ok;
  }

  async function setRole(roomId, userId, role) {
    const r = await attempt(`member:${userId}`, () => call(io(), "update_member", { room_id: roomId, user_id: userId, role }));
    if (r.ok) apply(u.roomUpdated, r.value.room);
    return r.ok;
  }

  async function removeMember(roomId, userId) {
    const r = await attempt(`member:${userId}`, () => call(io(), "remove_member", { room_id: roomId, user_id: userId }));
    if (r.ok) apply(u.roomUpdated, r.value.room);
    return r.ok;
  }

  async function leaveRoom(roomId) {
    const me = store.get().me.user_id;
    const r = await attempt("leave", () => call(io(), "remove_member", { room_id: roomId, user_id: me }));
    if (r.ok) apply(u.roomRemoved, roomId, "You left the room.");
    return r.ok;
  }

  async function deleteRoom(roomId) {
    const r = await attempt("delete-room", () => api.deleteRoom(roomId));
    if (r.ok) apply(u.roomRemoved, roomId, "The room was deleted.");
    return r.ok;
  }

  async function joinPublic(roomId) {
    const r = await attempt(`public:${roomId}`, () => call(io(), "join_room", { room_id: roomId }));
    if (r.ok) {
      apply(u.roomJoined, r.value, { full: true, now: Date.now() });
      if (r.value.voice) apply(voiceState, { room_id: roomId, ...r.value.voice });
      apply(u.navigate, { page: "rooms", roomId });
    }
    return r.ok;
  }

  // ---- messages ----------------------------------------------------------------------

  async function sendMessage(roomId, content, fileIds = []) {
    stopTyping();
    const payload = { room_id: roomId, content, client_msg_id: randomId() };
    if (fileIds.length) payload.file_ids = fileIds;
    const r = await attempt("send", () => callWithRetry(io(), "send_message", payload));
    if (r.ok) apply(u.messageReceived, r.value.message, Date.now());
    return r.ok;
  }

  async function stop(roomId, messageId) {
    const payload = { room_id: roomId };
    if (messageId) payload.message_id = messageId;
    await attempt("stop", () => call(io(), "stop_generation", payload));
  }

  // ---- voice rooms -------------------------------------------------------------------

  async function voiceStart(roomId) {
    return (await attempt("voice", () => call(io(), "voice_start", { room_id: roomId }))).ok;
  }

  /** One chunk of PCM16 (a binary attachment); a refusal ends the turn (`onRefused`). */
  function voiceChunk(roomId, bytes, onRefused) {
    const socket = io();
    if (!socket || !socket.connected) { onRefused("You are offline."); return; }
    socket.emit("voice_chunk", { room_id: roomId, audio: bytes }, (reply) => {
      if (reply && !reply.ok) onRefused(serverSentence(reply.error || {}));
    });
  }

  async function voiceStop(roomId) {
    return (await attempt("voice", () => call(io(), "voice_stop", { room_id: roomId }))).ok;
  }

  async function voiceCancel(roomId) {
    await attempt("voice", () => call(io(), "voice_cancel", { room_id: roomId }));
  }

  async function regenerate(roomId, messageId) {
    await attempt("regenerate", () => call(io(), "regenerate", { room_id: roomId, message_id: messageId }));
  }

  function typing(roomId) {
    const now = Date.now();
    if (typingRoom !== roomId || now - typingAt > 3000) {
      notify(io(), "typing", { room_id: roomId, is_typing: true });
      typingRoom = roomId;
      typingAt = now;
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, 4000);
  }

  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingRoom) notify(io(), "typing", { room_id: typingRoom, is_typing: false });
    typingRoom = null;
  }

  // ---- files, documents, uploads -----------------------------------------------------

  async function upload(target, files) {
    const ids = files.map(() => randomId());
    const key = target.scope === "room" ? `upload:${target.room_id}` : "upload:documents";
    apply(u.clearError, key);
    apply(u.uploadsStarted, newEntries(ids, files.map((f) => f.name), target));
    try {
      const records = await api.upload(target, files, (fraction) => apply(u.uploadProgress, ids, fraction));
      apply(u.uploadStored, ids, records, target);
      if (target.scope === "room" && store.get().rooms[target.room_id]) loadFiles(target.room_id);
      return records;
    } catch (err) {
      const sentence = serverSentence(err);
      apply(u.uploadFailed, ids, sentence);
      apply(u.refused, key, sentence);
      return null;
    }
  }

  /** Ask aloud in a chat: the spoken answer as a Blob, or null (the error is shown). */
  async function askAloud(roomId, recording) {
    const r = await attempt("send", () => api.runAudio(roomId, recording));
    return r.ok ? r.value : null;
  }

  /** After a reconnect: read back the status of uploads whose last events we may have missed. */
  async function recheckUploads() {
    const waiting = pending(store.get().uploads);
    const rooms = new Set(waiting.filter((x) => x.scope === "room").map((x) => x.room_id));
    for (const roomId of rooms) {
      try {
        const files = await api.listFiles(roomId);
        for (const f of files) apply(u.documentStatus, { document_id: f.file_id, status: f.status, progress: f.progress, error: f.error });
        if (store.get().rooms[roomId] && store.get().rooms[roomId].files) apply(u.roomFilesLoaded, roomId, files);
      } catch { /* the room may be gone; its entries stay as they were */ }
    }
    for (const entry of waiting.filter((x) => x.scope === "documents")) {
      try {
        const d = await api.getDocument(entry.key);
        apply(u.documentStatus, { document_id: d.document_id, status: d.status, progress: d.progress, error: d.error });
      } catch (err) {
        if (err.code === "not_found") apply(u.documentStatus, { document_id: entry.key, status: "failed", progress: 0, error: "This document was deleted." });
      }
    }
  }

  async function loadFiles(roomId) {
    const r = await attempt(`files:${roomId}`, () => api.listFiles(roomId));
    if (r.ok) apply(u.roomFilesLoaded, roomId, r.value);
  }

  async function deleteFile(roomId, fileId) {
    const r = await attempt(`file:${fileId}`, () => api.deleteFile(roomId, fileId));
    if (r.ok) apply(u.fileRemoved, roomId, fileId);
  }

  async function loadDocuments() {
    const r = await attempt("documents", () => api.listDocuments());
    if (r.ok) apply(u.documentsLoaded, r.value);
  }

  async function deleteDocument(id) {
    const r = await attempt(`document:${id}`, () => api.deleteDocument(id));
    if (r.ok) apply(u.documentRemoved, id);
  }

  // ---- pages -------------------------------------------------------------------------

  async function loadPublic(more = false) {
    const cursor = more ? store.get().publicCursor : null;
    const r = await attempt("public", () => api.listPublicRooms(cursor));
    if (r.ok) apply(u.publicRoomsLoaded, r.value, { more });
  }

  async function loadUsage() {
    const r = await attempt("usage", () => api.metrics(30));
    if (r.ok) apply(u.usageLoaded, r.value);
  }

  /** GET /api/v1/tools: what a room's owner can enable (read again at each opening of the settings). */
  async function loadTools() {
    const r = await attempt("tools-list", () => api.request("GET", "/tools"));
    if (r.ok) apply(u.toolsLoaded, r.value.tools);
  }

  /** Go somewhere, and fetch what that page shows. */
  function navigate(route) {
    const before = store.get().route;
    if (before.roomId && before.roomId !== route.roomId) stopTyping();
    apply(u.navigate, route);
    const s = store.get();
    if (s.route.page === "documents") loadDocuments();
    if (s.route.page === "public") loadPublic();
    if (s.route.page === "usage") loadUsage();
    if (s.route.panel === "files" && (before.panel !== "files" || before.roomId !== s.route.roomId)) loadFiles(s.route.roomId);
    if (s.route.panel === "settings" && (before.panel !== "settings" || before.roomId !== s.route.roomId)) loadTools();
  }

  return {
    reconcile, createRoom, updateRoom, invite, setRole, removeMember, leaveRoom, deleteRoom,
    joinPublic, sendMessage, stop, regenerate, voiceStart, voiceChunk, voiceStop, voiceCancel, typing, stopTyping, upload, recheckUploads, askAloud,
    loadFiles, deleteFile, loadDocuments, deleteDocument, loadPublic, loadUsage, navigate,
    clearError: (key) => apply(u.clearError, key),
    dismiss: (id) => apply(u.dismiss, id),
    visible: (v) => apply(u.visibility, v),
  };
}
