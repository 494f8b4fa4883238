// Pure updates: (state, event or action, ...) → new state. Never touches the DOM, the
// network or the clock (callers pass `now`). An event about a room the page has not
// loaded returns the state unchanged.

import { highestSeq, isFinal, mergeMessages } from "./messages.js";
import { addOnline, removeOnline, setTyping } from "./presence.js";
import { applyDelta, newStream, seedStream } from "./stream.js";
import { mergeToolCall } from "./tools.js";
import { forgetRoom, knownSeq, markRead } from "./unread.js";
import * as uploads from "./uploads.js";

const MAX_NOTICES = 4;
const MAX_EARLY = 50; // document statuses kept for uploads whose answer has not come yet

/** The state of a signed-in page. */
export function initialState(me, readMarks = {}) {
  return {
    me, // {user_id, name, email}
    conn: "connecting", // connecting | online | offline
    visible: true,
    route: { page: "rooms", roomId: null, panel: null },
    models: [],
    rooms: {}, // room_id → room view (roomView below)
    readMarks, // room_id → highest seq read
    documents: null, // null until loaded: document_id → document
    publicRooms: null, // null until loaded: [room]
    publicCursor: null, // next page of public rooms
    tools: null, // null until GET /tools answers (tools a room's owner can enable)
    usage: null, // GET /metrics answer
    uploads: [], // see uploads.js
    early: {}, // document_id → status that came before its upload's answer
    notices: [], // [{id, text, detail, kind}]
    noticeSeq: 0,
    errors: {}, // control key → the server's sentence, shown next to that control
    busy: {}, // control key → true while its request runs
  };
}

function roomView(room) {
  return {
    room,
    online: [],
    typing: {}, // user_id → expiry (ms)
    messages: {}, // message_id → message
    streams: {}, // message_id → stream (replies being written)
    lastSeq: 0,
    loaded: false, // holds the recent history (a full join_room answered)
    joined: false, // this connection is in the room
    invited: false, // added by someone else, not opened yet
    files: null, // null until loaded: [file]
    activity: Date.parse(room.updated_at || room.created_at) || 0,
  };
}

const isRoom = (room) => Boolean(room && typeof room.room_id === "string" && room.room_id);
const str = (x) => (typeof x === "string" ? x : "");

function patchRoom(s, roomId, change) {
  const v = s.rooms[roomId];
  if (!v) return s;
  const next = change(v);
  return next === v ? s : { ...s, rooms: { ...s.rooms, [roomId]: next } };
}

function readCurrent(s) {
  const id = s.route.page === "rooms" ? s.route.roomId : null;
  const v = id && s.rooms[id];
  if (!v || !s.visible) return s;
  const marks = markRead(s.readMarks, id, knownSeq(v));
  return marks === s.readMarks ? s : { ...s, readMarks: marks };
}

// ---- notices and control errors ----------------------------------------------------

export function notice(s, text, { kind = "error", detail = "" } = {}) {
  const id = s.noticeSeq + 1;
  return { ...s, noticeSeq: id, notices: [...s.notices, { id, text, detail, kind }].slice(-MAX_NOTICES) };
}

export function dismiss(s, id) {
  return s.notices.some((n) => n.id === id) ? { ...s, notices: s.notices.filter((n) => n.id !== id) } : s;
}

/** A refused action: the server's sentence next to the control `key` (nothing else changes). */
export function refused(s, key, sentence) {
  return { ...s, errors: { ...s.errors, [key]: sentence } };
}

export function clearError(s, key) {
  if (!(key in s.errors)) return s;
  const { [key]: _gone, ...errors } = s.errors;
  return { ...s, errors };
}

export function busy(s, key, on) {
  if (Boolean(s.busy[key]) === on) return s;
  const next = { ...s.busy };
  if (on) next[key] = true; else delete next[key];
  return { ...s, busy: next };
}

// ---- connection, page, navigation ---------------------------------------------------

/** Connection state; when it drops, no room is joined any more (rejoin on connect). */
export function connection(s, conn) {
  if (conn === s.conn) return s;
  let rooms = s.rooms;
  if (conn !== "online") {
    rooms = {};
    for (const [id, v] of Object.entries(s.rooms)) rooms[id] = v.joined ? { ...v, joined: false } : v;
  }
  return { ...s, conn, rooms };
}

export function visibility(s, visible) {
  return visible === s.visible ? s : readCurrent({ ...s, visible });
}

const PAGES = new Set(["rooms", "documents", "public", "usage", "keys"]);
const PANELS = new Set(["files", "members", "settings"]);

/** Go to a page (and room, and panel). Opening a room marks it read. */
export function navigate(s, route) {
  const page = PAGES.has(route.page) ? route.page : "rooms";
  const roomId = page === "rooms" && route.roomId ? route.roomId : null;
  const panel = roomId && PANELS.has(route.panel) ? route.panel : null;
  const r = s.route;
  let next = s;
  if (r.page !== page || r.roomId !== roomId || r.panel !== panel) {
    next = { ...s, route: { page, roomId, panel } };
  }
  if (roomId && s.rooms[roomId] && s.rooms[roomId].invited) {
    next = patchRoom(next, roomId, (v) => ({ ...v, invited: false }));
  }
  return readCurrent(next);
}

export function modelsLoaded(s, models) {
  return { ...s, models: Array.isArray(models) ? models : [] };
}

// ---- rooms --------------------------------------------------------------------------

/** A room we may show (listed, created, invited to): kept or added. */
export function roomAdded(s, room, { invited = false, joined = false, loaded = false } = {}) {
  if (!isRoom(room)) return s;
  const id = room.room_id;
  const old = s.rooms[id];
  const base = old || roomView(room);
  const view = {
    ...base, room,
    invited: old ? old.invited || invited : invited,
    joined: base.joined || joined,
    loaded: base.loaded || loaded,
  };
  let next = { ...s, rooms: { ...s.rooms, [id]: view } };
  if (!(id in s.readMarks)) {
    // First sight: nothing in it is "new" yet (unless it was an invitation).
    next = { ...next, readMarks: { ...s.readMarks, [id]: invited ? 0 : room.last_seq || 0 } };
  }
  return next;
}

export function roomsListed(s, rooms) {
  let next = s;
  for (const room of Array.isArray(rooms) ? rooms : []) next = roomAdded(next, room);
  return next;
}

/** A room this page created: joined on this socket, empty, opened. */
export function roomCreatedHere(s, room) {
  if (!isRoom(room)) return s;
  let next = roomAdded(s, room, { joined: true, loaded: true });
  next = patchRoom(next, room.room_id, (v) => ({ ...v, online: addOnline(v.online, s.me.user_id) }));
  return navigate(next, { page: "rooms", roomId: room.room_id });
}

export function roomUpdated(s, room) {
  if (!isRoom(room)) return s;
  return patchRoom(s, room.room_id, (v) => ({ ...v, room }));
}

/** room_joined: the room, and who is online (always including me). */
export function roomInfo(s, data) {
  if (!data || !isRoom(data.room)) return s;
  return patchRoom(s, data.room.room_id, (v) => ({
    ...v,
    room: data.room,
    online: addOnline(Array.isArray(data.online) ? data.online.filter((x) => typeof x === "string") : v.online, s.me.user_id),
  }));
}

/** The join_room answer: history (full, or replayed after since_seq) and any reply in flight. */
export function roomJoined(s, data, { full = false, now = Date.now() } = {}) {
  if (!data || !isRoom(data.room)) return s;
  let next = roomAdded(s, data.room);
  next = roomInfo(next, data);
  next = patchRoom(next, data.room.room_id, (v) => ({ ...v, joined: true, loaded: v.loaded || full }));
  for (const m of Array.isArray(data.messages) ? data.messages : []) next = messageReceived(next, m, now);
  const a = data.active_stream;
  if (a && typeof a.message_id === "string") {
    next = patchRoom(next, data.room.room_id, (v) => {
      if (v.messages[a.message_id] && isFinal(v.messages[a.message_id])) return v;
      const stream = v.streams[a.message_id] || newStream({ since: v.lastSeq, created_at: new Date(now).toISOString() });
      return { ...v, streams: { ...v.streams, [a.message_id]: seedStream(stream, a.seq, a.content) } };
    });
  }
  return readCurrent(next);
}

/** A room is gone for us (deleted, removed, left): off the list; its page goes back to the list. */
export function roomRemoved(s, roomId, sentence = "") {
  if (!s.rooms[roomId]) return s;
  const { [roomId]: _gone, ...rooms } = s.rooms;
  let next = { ...s, rooms, readMarks: forgetRoom(s.readMarks, roomId) };
  if (s.route.roomId === roomId) {
    next = { ...next, route: { page: "rooms", roomId: null, panel: null } };
    if (sentence) next = notice(next, sentence, { kind: "info" });
  }
  return next;
}

// ---- presence -----------------------------------------------------------------------

export function userJoined(s, e) {
  if (!e || !e.user || typeof e.user.user_id !== "string") return s;
  return patchRoom(s, e.room_id, (v) => {
    const online = addOnline(v.online, e.user.user_id);
    return online === v.online ? v : { ...v, online };
  });
}

export function userLeft(s, e) {
  if (!e || !e.user || typeof e.user.user_id !== "string") return s;
  return patchRoom(s, e.room_id, (v) => {
    const online = removeOnline(v.online, e.user.user_id);
    const typing = setTyping(v.typing, e.user.user_id, false, 0);
    return online === v.online && typing === v.typing ? v : { ...v, online, typing };
  });
}

export function userTyping(s, e, now) {
  if (!e || typeof e.user_id !== "string" || e.user_id === s.me.user_id) return s;
  return patchRoom(s, e.room_id, (v) => {
    const typing = setTyping(v.typing, e.user_id, Boolean(e.is_typing), now);
    return typing === v.typing ? v : { ...v, typing };
  });
}

// ---- messages and replies -----------------------------------------------------------

/** A persisted message (live, replayed, or our own send's ack). */
export function messageReceived(s, msg, now = Date.now()) {
  if (!msg || typeof msg.message_id !== "string" || !s.rooms[msg.room_id]) return s;
  const next = patchRoom(s, msg.room_id, (v) => {
    const messages = mergeMessages(v.messages, [msg]);
    if (messages === v.messages) return v;
    const kept = messages[msg.message_id];
    let streams = v.streams;
    if (isFinal(kept)) {
      if (msg.message_id in streams) {
        const { [msg.message_id]: _done, ...rest } = streams;
        streams = rest;
      }
    } else if (kept.status === "streaming" && !(msg.message_id in streams)) {
      // A reply still being written (its checkpoint): show its text, take the rest as deltas.
      const seq = Number.isInteger(kept.seq) ? kept.seq - 1 : v.lastSeq;
      streams = { ...streams, [msg.message_id]: { ...newStream({ model: kept.model, reply_to: kept.reply_to, created_at: kept.created_at, since: seq }), text: str(kept.content) } };
    }
    const lastSeq = highestSeq({ x: kept }, v.lastSeq);
    const room = lastSeq > (v.room.last_seq || 0) ? { ...v.room, last_seq: lastSeq } : v.room;
    const activity = Math.max(v.activity, Date.parse(kept.created_at) || 0);
    return { ...v, messages, streams, lastSeq, room, activity };
  });
  return readCurrent(next);
}

export function assistantStarted(s, e, now = Date.now()) {
  if (!e || typeof e.message_id !== "string") return s;
  return patchRoom(s, e.room_id, (v) => {
    if (v.messages[e.message_id] && isFinal(v.messages[e.message_id])) return v;
    const old = v.streams[e.message_id];
    const stream = { ...(old || newStream({ since: v.lastSeq, created_at: new Date(now).toISOString() })), model: e.model || null, reply_to: e.reply_to || null };
    return { ...v, streams: { ...v.streams, [e.message_id]: stream }, activity: Math.max(v.activity, now) };
  });
}

export function assistantDelta(s, e, now = Date.now()) {
  if (!e || typeof e.message_id !== "string") return s;
  return patchRoom(s, e.room_id, (v) => {
    if (v.messages[e.message_id] && isFinal(v.messages[e.message_id])) return v; // a late delta
    const old = v.streams[e.message_id] || newStream({ since: v.lastSeq, created_at: new Date(now).toISOString() });
    const stream = applyDelta(old, e.seq, e.delta);
    return stream === old && v.streams[e.message_id] ? v : { ...v, streams: { ...v.streams, [e.message_id]: stream } };
  });
}

/**
 * assistant_tool_call: the call joins (or updates) the reply's calls, by call_id. Only a
 * reply this page sees being written takes it: for an unknown message, or one whose final
 * message is here (it carries `tool_calls`), the event changes nothing.
 */
export function assistantToolCall(s, e) {
  if (!e || typeof e.message_id !== "string") return s;
  return patchRoom(s, e.room_id, (v) => {
    const stream = v.streams[e.message_id];
    if (!stream || (v.messages[e.message_id] && isFinal(v.messages[e.message_id]))) return v;
    const before = stream.calls || [];
    const calls = mergeToolCall(before, e);
    if (calls === before) return v;
    return { ...v, streams: { ...v.streams, [e.message_id]: { ...stream, calls } } };
  });
}

export function assistantDone(s, e, now = Date.now()) {
  if (!e || !s.rooms[e.room_id]) return s;
  let next = e.message ? messageReceived(s, e.message, now) : s;
  next = patchRoom(next, e.room_id, (v) => {
    if (!(e.message_id in v.streams)) return v;
    const { [e.message_id]: _done, ...streams } = v.streams;
    return { ...v, streams };
  });
  if (e.finish_reason === "error" && next.route.roomId === e.room_id) {
    next = notice(next, "The assistant could not finish its reply.", { detail: "Press Regenerate to try again, or pick another model." });
  }
  return next;
}

// ---- files, documents, uploads ------------------------------------------------------

export function uploadsStarted(s, entries) {
  return { ...s, uploads: uploads.addEntries(s.uploads, entries) };
}

export function uploadProgress(s, ids, fraction) {
  const u = uploads.progressed(s.uploads, ids, fraction);
  return u === s.uploads ? s : { ...s, uploads: u };
}

/** The upload answered: entries get their records; new documents and files show in their lists. */
export function uploadStored(s, ids, records, target) {
  let next = { ...s, uploads: uploads.stored(s.uploads, ids, records, s.early) };
  const list = Array.isArray(records) ? records : [];
  if (target.scope === "documents" && next.documents) {
    const documents = { ...next.documents };
    for (const r of list) documents[r.document_id] = { ...r, ...(s.early[r.document_id] || {}) };
    next = { ...next, documents };
  } else if (target.scope === "room") {
    next = patchRoom(next, target.room_id, (v) => (v.files ? { ...v, files: mergeFiles(v.files, list, s.early) } : v));
  }
  return next;
}

function mergeFiles(files, records, early = {}) {
  const byId = new Map(files.map((f) => [f.file_id, f]));
  for (const r of records) byId.set(r.file_id, { ...r, ...(early[r.file_id] || {}) });
  return [...byId.values()];
}

export function uploadFailed(s, ids, sentence) {
  return { ...s, uploads: uploads.failed(s.uploads, ids, sentence) };
}

/** document_status (or a status read back after a reconnect): uploads, documents, room files. */
export function documentStatus(s, e) {
  if (!e || typeof e.document_id !== "string") return s;
  const st = { status: e.status, progress: e.progress };
  if (e.error) st.error = e.error;
  let next = s;
  const u = uploads.statusChanged(s.uploads, { document_id: e.document_id, ...st });
  if (u !== s.uploads) next = { ...next, uploads: u };
  if (next.documents && next.documents[e.document_id]) {
    const d = next.documents[e.document_id];
    next = { ...next, documents: { ...next.documents, [e.document_id]: { ...d, ...st, error: e.error || undefined } } };
  }
  let rooms = null;
  for (const [id, v] of Object.entries(next.rooms)) {
    if (!v.files || !v.files.some((f) => f.file_id === e.document_id)) continue;
    rooms = rooms || { ...next.rooms };
    rooms[id] = { ...v, files: v.files.map((f) => (f.file_id === e.document_id ? { ...f, ...st, error: e.error || undefined } : f)) };
  }
  if (rooms) next = { ...next, rooms };
  if (!s.uploads.some((x) => x.key === e.document_id)) {
    // Maybe ahead of its upload's answer: keep it for uploadStored (bounded).
    const early = Object.fromEntries([...Object.entries(next.early), [e.document_id, st]].slice(-MAX_EARLY));
    next = { ...next, early };
  }
  return next;
}

export function documentsLoaded(s, docs) {
  const documents = {};
  for (const d of Array.isArray(docs) ? docs : []) if (d && d.document_id) documents[d.document_id] = d;
  return { ...s, documents };
}

export function documentRemoved(s, id) {
  if (!s.documents || !s.documents[id]) return s;
  const { [id]: _gone, ...documents } = s.documents;
  return { ...s, documents, uploads: s.uploads.filter((u) => u.key !== id) };
}

export function roomFilesLoaded(s, roomId, files) {
  return patchRoom(s, roomId, (v) => ({ ...v, files: Array.isArray(files) ? files : [] }));
}

export function fileRemoved(s, roomId, fileId) {
  const next = patchRoom(s, roomId, (v) => (v.files ? { ...v, files: v.files.filter((f) => f.file_id !== fileId) } : v));
  return next.uploads.some((u) => u.key === fileId) ? { ...next, uploads: next.uploads.filter((u) => u.key !== fileId) } : next;
}

// ---- public rooms, usage ------------------------------------------------------------

/** A page of public rooms ({chats, next_cursor}); `more` appends it to the list shown. */
export function publicRoomsLoaded(s, page, { more = false } = {}) {
  const rooms = (page && Array.isArray(page.chats) ? page.chats : []).filter(isRoom);
  const list = more && s.publicRooms ? [...s.publicRooms, ...rooms] : rooms;
  return { ...s, publicRooms: list, publicCursor: (page && page.next_cursor) || null };
}

/** GET /api/v1/tools answered: the tools a room's owner can pick (malformed entries left out). */
export function toolsLoaded(s, tools) {
  const list = Array.isArray(tools) ? tools.filter((t) => t && typeof t.name === "string" && t.name) : [];
  return { ...s, tools: list };
}

export function usageLoaded(s, usage) {
  return { ...s, usage: usage || null };
}
