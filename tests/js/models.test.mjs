// The demo-model notice: which replies get it, and its command shown as code, never markup.
import assert from "node:assert/strict";
import { test } from "node:test";
import { codeSpans, demoNotice } from "../../web/lib/models.js";

const NOTICE = "This is a 135M-parameter demo model. For real answers restart with a provider key, e.g. `OPENAI_API_KEY=sk-... make run`.";
const models = [
  { id: "openai:gpt-4o-mini", available: false, demo: false, notice: null },
  { id: "local:smollm2", available: true, demo: true, notice: NOTICE },
  { id: "x:odd", demo: true, notice: null },
];

test("only replies from a model the server marks demo get its notice", () => {
  assert.equal(demoNotice(models, "local:smollm2"), NOTICE);
  assert.equal(demoNotice(models, "openai:gpt-4o-mini"), null);
  assert.equal(demoNotice(models, "scripted:fixed"), null, "a model the catalog does not list");
  assert.match(demoNotice(models, "x:odd"), /demo model/, "demo without a notice still says so");
  assert.equal(demoNotice([], "local:smollm2"), null);
  assert.equal(demoNotice(null, "local:smollm2"), null);
  assert.equal(demoNotice(models, null), null);
});

test("codeSpans splits on backticks; unmatched ones stay text; markup stays text", () => {
  assert.deepEqual(codeSpans("run `make run` now"), [
    { text: "run ", code: false }, { text: "make run", code: true }, { text: " now", code: false }]);
  assert.deepEqual(codeSpans("a `b"), [{ text: "a `b", code: false }]);
  assert.deepEqual(codeSpans("``x"), [{ text: "x", code: false }]);
  assert.deepEqual(codeSpans("<b>`<i>`"), [{ text: "<b>", code: false }, { text: "<i>", code: true }]);
  assert.deepEqual(codeSpans(""), []);
  assert.deepEqual(codeSpans(undefined), []);
});
