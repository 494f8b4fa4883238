// Delta assembly: in order, early deltas held, repeats dropped, snapshots from join_room.
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyDelta, newStream, seedStream } from "../../web/lib/stream.js";

test("deltas apply in seq order whatever order they arrive in", () => {
  let s = newStream();
  s = applyDelta(s, 2, "b");
  assert.equal(s.text, "");
  s = applyDelta(s, 3, "c");
  s = applyDelta(s, 1, "a");
  assert.equal(s.text, "abc");
  assert.equal(s.applied, 3);
  assert.deepEqual(s.pending, {});
});

test("a repeated or bogus delta changes nothing", () => {
  const s = applyDelta(applyDelta(newStream(), 1, "a"), 2, "b");
  assert.equal(applyDelta(s, 1, "a"), s);
  assert.equal(applyDelta(s, 0, "x"), s);
  assert.equal(applyDelta(s, "3", "x"), s);
  const held = applyDelta(s, 4, "d");
  assert.equal(applyDelta(held, 4, "d"), held);
});

test("a snapshot replaces what it covers and keeps later deltas", () => {
  let s = applyDelta(newStream(), 1, "He");
  s = applyDelta(s, 5, "!"); // early
  s = seedStream(s, 4, "Hello");
  assert.equal(s.text, "Hello!");
  assert.equal(s.applied, 5);
  assert.equal(seedStream(s, 3, "Hel"), s, "an older snapshot is ignored");
});

test("updates never mutate the stream they get", () => {
  const s = Object.freeze({ ...newStream(), pending: Object.freeze({}) });
  const t = applyDelta(s, 1, "x");
  assert.equal(s.text, "");
  assert.equal(t.text, "x");
});
