// Replay merge by seq: history after a reconnect merges with what the page holds.
import assert from "node:assert/strict";
import { test } from "node:test";
import { highestSeq, mergeMessages, ordered, regenerateTarget, replaySince } from "../../web/lib/messages.js";

const m = (id, seq, extra = {}) => ({ message_id: id, room_id: "r", seq, role: "user", content: id, status: "complete", created_at: `2025-01-01T00:00:0${seq}Z`, ...extra });

test("replayed history merges by id without duplicates, in seq order", () => {
  let msgs = mergeMessages({}, [m("a", 1), m("c", 3)]);
  msgs = mergeMessages(msgs, [m("b", 2), m("c", 3), m("d", 4)]);
  assert.deepEqual(ordered(msgs).map((x) => x.seq), [1, 2, 3, 4]);
  assert.equal(highestSeq(msgs), 4);
});

test("merging what the page already holds returns the same object", () => {
  const msgs = mergeMessages({}, [m("a", 1)]);
  assert.equal(mergeMessages(msgs, [m("a", 1)]), msgs);
});

test("a finished reply is never replaced by an older streaming snapshot", () => {
  const done = m("r1", 2, { role: "assistant", status: "complete", content: "full answer" });
  const msgs = mergeMessages({}, [done]);
  const after = mergeMessages(msgs, [m("r1", 2, { role: "assistant", status: "streaming", content: "full" })]);
  assert.equal(after, msgs);
  const cancelled = mergeMessages(msgs, [{ ...done, status: "cancelled" }]);
  assert.equal(cancelled.r1.status, "cancelled");
});

test("replay starts before any reply that was streaming", () => {
  assert.equal(replaySince(7, {}), 7);
  assert.equal(replaySince(7, { x: { since: 5 } }), 5);
  assert.equal(replaySince(0, {}), 0);
});

test("regenerate targets the question of the newest answer", () => {
  const list = ordered(mergeMessages({}, [m("q1", 1), m("a1", 2, { role: "assistant", reply_to: "q1" })]));
  assert.equal(regenerateTarget(list), "q1");
  assert.equal(regenerateTarget([...list, m("q2", 3)]), "q2");
  assert.equal(regenerateTarget([]), null);
});
