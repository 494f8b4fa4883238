// Unread counts from read marks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { forgetRoom, knownSeq, markRead, roomsWithNews, unreadCount } from "../../web/lib/unread.js";

const view = (id, lastSeq, roomSeq, invited = false) => ({ room: { room_id: id, last_seq: roomSeq }, lastSeq, invited });

test("unread is what is newer than the read mark, never negative", () => {
  assert.equal(knownSeq(view("a", 3, 5)), 5);
  assert.equal(unreadCount(view("a", 3, 5), { a: 2 }), 3);
  assert.equal(unreadCount(view("a", 3, 5), { a: 9 }), 0);
  assert.equal(unreadCount(view("a", 3, 5), {}), 5);
});

test("the room on screen has nothing unread", () => {
  assert.equal(unreadCount(view("a", 3, 5), {}, "a"), 0);
});

test("read marks only move forward, and unchanged marks are the same object", () => {
  const marks = { a: 4 };
  assert.equal(markRead(marks, "a", 3), marks);
  assert.deepEqual(markRead(marks, "a", 6), { a: 6 });
  assert.deepEqual(forgetRoom({ a: 1, b: 2 }, "a"), { b: 2 });
});

test("rooms with news count unread rooms and unopened invitations", () => {
  const views = [view("a", 2, 2), view("b", 0, 0, true), view("c", 1, 1)];
  assert.equal(roomsWithNews(views, { a: 1, c: 1 }, null), 2);
  assert.equal(roomsWithNews(views, { a: 1, c: 1 }, "a"), 1);
});
