// The event table: every server event updates the state as the page needs, and an event
// for a room the page has not loaded (or a malformed one) changes nothing and never throws.
import assert from "node:assert/strict";
import { test } from "node:test";
import { onServerEvent, SERVER_EVENTS } from "../../web/lib/events.js";
import * as u from "../../web/lib/update.js";

const me = { user_id: "me", name: "Me", email: "me@example.com" };
const room = (id, extra = {}) => ({ room_id: id, title: id, owner_id: "me", members: [{ user_id: "me", name: "Me", role: "owner" }], last_seq: 0, created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:00Z", ...extra });
const msg = (id, seq, extra = {}) => ({ message_id: id, room_id: "r", seq, role: "user", author: { user_id: "me", name: "Me" }, content: id, status: "complete", created_at: "2025-01-01T00:00:01Z", ...extra });

function loaded() {
  let s = u.initialState(me, {});
  s = u.roomJoined(s, { room: room("r"), online: ["me"], messages: [] }, { full: true, now: 0 });
  return s;
}

test("every event for an unknown room leaves the state as it was", () => {
  const s = loaded();
  const payloads = {
    room_created: {}, room_joined: { room: null }, room_updated: { room: { title: "x" } },
    room_deleted: { room_id: "nope" }, room_invited: { room: null },
    user_joined: { room_id: "nope", user: { user_id: "x", name: "X" } },
    user_left: { room_id: "nope", user: { user_id: "x", name: "X" } },
    user_typing: { room_id: "nope", user_id: "x", is_typing: true },
    message_received: { message: msg("m", 1, { room_id: "nope" }) },
    assistant_started: { room_id: "nope", message_id: "a", reply_to: null, model: "m" },
    assistant_delta: { room_id: "nope", message_id: "a", seq: 1, delta: "x" },
    assistant_tool_call: { room_id: "nope", message_id: "a", call_id: "c", name: "t", arguments: "{}", status: "running" },
    assistant_done: { room_id: "nope", message_id: "a", finish_reason: "stop", message: msg("a", 2, { room_id: "nope" }) },
    document_status: { document_id: "d", status: "ready", progress: 1 },
  };
  for (const name of Object.keys(SERVER_EVENTS)) {
    if (name === "error" || name === "document_status") continue;
    assert.equal(onServerEvent(s, name, payloads[name], 5), s, name);
    for (const junk of [undefined, null, 7, "x", [], {}]) {
      assert.doesNotThrow(() => onServerEvent(s, name, junk, 5), `${name}(${JSON.stringify(junk)})`);
    }
  }
  assert.equal(onServerEvent(s, "no_such_event", {}), s);
  const after = onServerEvent(s, "document_status", payloads.document_status);
  assert.deepEqual(after.rooms, s.rooms, "an unknown document only waits in `early`");
});

test("a streamed reply: started, deltas out of order, done with the final message", () => {
  let s = loaded();
  s = onServerEvent(s, "message_received", { message: msg("q", 1) }, 1);
  s = onServerEvent(s, "assistant_started", { room_id: "r", message_id: "a", reply_to: "q", model: "x:y" }, 2);
  s = onServerEvent(s, "assistant_delta", { room_id: "r", message_id: "a", seq: 2, delta: "lo" }, 3);
  s = onServerEvent(s, "assistant_delta", { room_id: "r", message_id: "a", seq: 1, delta: "Hel" }, 3);
  assert.equal(s.rooms.r.streams.a.text, "Hello");
  const final = msg("a", 2, { role: "assistant", author: null, content: "Hello", reply_to: "q", model: "x:y" });
  s = onServerEvent(s, "assistant_done", { room_id: "r", message_id: "a", finish_reason: "stop", message: final }, 4);
  assert.deepEqual(s.rooms.r.streams, {});
  assert.equal(s.rooms.r.messages.a.content, "Hello");
  assert.equal(s.rooms.r.lastSeq, 2);
  const late = onServerEvent(s, "assistant_delta", { room_id: "r", message_id: "a", seq: 3, delta: "!" }, 5);
  assert.equal(late, s, "a delta after the final message is dropped");
});

test("presence and typing", () => {
  let s = loaded();
  s = onServerEvent(s, "user_joined", { room_id: "r", user: { user_id: "b", name: "Bob" } });
  assert.deepEqual(s.rooms.r.online, ["me", "b"]);
  s = onServerEvent(s, "user_typing", { room_id: "r", user_id: "b", is_typing: true }, 100);
  assert.ok(s.rooms.r.typing.b > 100);
  s = onServerEvent(s, "user_left", { room_id: "r", user: { user_id: "b", name: "Bob" } });
  assert.deepEqual(s.rooms.r.online, ["me"]);
  assert.deepEqual(s.rooms.r.typing, {});
  const mine = onServerEvent(s, "user_typing", { room_id: "r", user_id: "me", is_typing: true }, 1);
  assert.equal(mine, s, "my own typing is not shown to me");
});

test("deleting the room on screen returns the page to the room list", () => {
  let s = u.navigate(loaded(), { page: "rooms", roomId: "r", panel: "settings" });
  s = onServerEvent(s, "room_deleted", { room_id: "r" });
  assert.equal(s.rooms.r, undefined);
  assert.deepEqual(s.route, { page: "rooms", roomId: null, panel: null });
  assert.equal(s.notices.length, 1);
  assert.ok(!("r" in s.readMarks));
});

test("an invitation is new until opened; messages in other rooms count as unread", () => {
  let s = onServerEvent(loaded(), "room_invited", { room: room("i", { owner_id: "o", last_seq: 3 }) });
  assert.equal(s.rooms.i.invited, true);
  assert.equal(s.readMarks.i, 0);
  s = u.navigate(s, { page: "rooms", roomId: "i" });
  assert.equal(s.rooms.i.invited, false);
  assert.equal(s.readMarks.i, 3);
  s = onServerEvent(s, "message_received", { message: msg("x", 1) }, 9);
  assert.equal(s.readMarks.r, 0, "not read: another room is on screen");
  s = u.navigate(s, { page: "rooms", roomId: "r" });
  assert.equal(s.readMarks.r, 1);
});

test("disconnect marks rooms not joined; replayed history merges by seq", () => {
  let s = onServerEvent(loaded(), "message_received", { message: msg("a", 1) }, 1);
  s = u.connection(s, "online");
  s = u.connection(s, "offline");
  assert.equal(s.rooms.r.joined, false);
  s = u.roomJoined(s, { room: room("r", { last_seq: 3 }), online: ["me"], messages: [msg("a", 1), msg("b", 2), msg("c", 3)] });
  assert.equal(s.rooms.r.joined, true);
  assert.deepEqual(Object.keys(s.rooms.r.messages).sort(), ["a", "b", "c"]);
  assert.equal(s.rooms.r.lastSeq, 3);
});

test("a late joiner sees the reply in flight from its snapshot", () => {
  let s = u.initialState(me, {});
  s = u.roomJoined(s, { room: room("r"), online: [], messages: [msg("q", 1)], active_stream: { message_id: "a", seq: 3, content: "abc" } }, { full: true, now: 0 });
  s = onServerEvent(s, "assistant_delta", { room_id: "r", message_id: "a", seq: 3, delta: "c" });
  s = onServerEvent(s, "assistant_delta", { room_id: "r", message_id: "a", seq: 4, delta: "d" });
  assert.equal(s.rooms.r.streams.a.text, "abcd");
});
