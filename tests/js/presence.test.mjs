// Presence: who is online, who is typing (with lapse).
import assert from "node:assert/strict";
import { test } from "node:test";
import { addOnline, nextTypingExpiry, onlineNames, removeOnline, setTyping, typingLine, TYPING_TTL_MS } from "../../web/lib/presence.js";

const room = { members: [{ user_id: "a", name: "Alice", role: "owner" }, { user_id: "b", name: "Bob", role: "member" }, { user_id: "c", name: "Cy", role: "member" }] };

test("online once per user", () => {
  const one = addOnline([], "a");
  assert.equal(addOnline(one, "a"), one);
  assert.deepEqual(removeOnline(addOnline(one, "b"), "a"), ["b"]);
  assert.deepEqual(onlineNames(room, ["a", "b", "zz"], "b"), ["Alice", "Bob (you)", "Someone"]);
});

test("typing lapses after its TTL and stops on is_typing false", () => {
  let t = setTyping({}, "a", true, 1000);
  assert.equal(typingLine(room, t, 1000, "b"), "Alice is typing…");
  assert.equal(typingLine(room, t, 1000 + TYPING_TTL_MS + 1, "b"), "");
  assert.equal(nextTypingExpiry(t, 1000), 1000 + TYPING_TTL_MS);
  t = setTyping(t, "c", true, 1000);
  assert.equal(typingLine(room, t, 1001, "b"), "Alice and Cy are typing…");
  assert.equal(typingLine(room, setTyping(t, "b", true, 1000), 1001, "zz"), "Several people are typing…");
  assert.equal(typingLine(room, t, 1001, "a"), "Cy is typing…", "never my own typing");
  assert.deepEqual(Object.keys(setTyping(t, "a", false, 0)), ["c"]);
  const none = {};
  assert.equal(setTyping(none, "a", false, 0), none);
});
