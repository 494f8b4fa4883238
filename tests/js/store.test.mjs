// The store: listeners hear each change once; an update that throws keeps the old state.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createStore } from "../../web/lib/store.js";
import { bars } from "../../web/lib/chart.js";

test("apply, subscribe, no news when nothing changed", () => {
  const store = createStore({ n: 0 });
  const seen = [];
  store.subscribe((s, prev) => seen.push([prev.n, s.n]));
  store.apply((s, k) => ({ n: s.n + k }), 2);
  store.apply((s) => s);
  assert.deepEqual(seen, [[0, 2]]);
});

test("a throwing update is reported and the state is kept", () => {
  const errors = [];
  const store = createStore({ n: 1 }, { onError: (e) => errors.push(e.message) });
  store.apply(() => { throw new Error("boom"); });
  assert.deepEqual(store.get(), { n: 1 });
  assert.deepEqual(errors, ["boom"]);
});

test("chart bars scale to the tallest day", () => {
  const b = bars([{ date: "d1", v: 0 }, { date: "d2", v: 5 }, { date: "d3", v: 10 }], "v", { width: 30, height: 100, gap: 0 });
  assert.deepEqual(b.map((x) => x.height), [0, 50, 100]);
  assert.deepEqual(b.map((x) => x.x), [0, 10, 20]);
  assert.equal(b[2].y, 0);
  assert.deepEqual(bars([], "v"), []);
  assert.ok(bars([{ date: "d", v: 0 }], "v").every((x) => x.height === 0));
});
