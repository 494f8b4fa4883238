// The API keys page's pure logic: the key is kept only until dismissed; dates for people.
import assert from "node:assert/strict";
import { test } from "node:test";
import { expiry, keyCreated, keyList, keyRevoked, keysLoaded, lastUsed, newKeyDismissed, usageLine } from "../../web/lib/apikeys.js";

const A = { id: "a", name: "laptop", prefix: "plr_abcdefgh", created_at: "2026-01-02T00:00:00+00:00", last_used_at: null, expires_at: null };
const B = { id: "b", name: "ci", prefix: "plr_zyxwvuts", created_at: "2026-01-05T00:00:00+00:00", last_used_at: null, expires_at: null };

test("a created key is listed and shown once, without the key in the list", () => {
  let s = keysLoaded({}, [A, null, { name: "no id" }]);
  assert.deepEqual(Object.keys(s.apiKeys), ["a"]);
  s = keyCreated(s, { ...B, key: "plr_secret" });
  assert.deepEqual(s.newKey, { id: "b", name: "ci", key: "plr_secret" });
  assert.equal(s.apiKeys.b.key, undefined, "the list never holds the key itself");
  assert.deepEqual(keyList(s).map((k) => k.id), ["b", "a"], "newest first");
  s = newKeyDismissed(s);
  assert.equal(s.newKey, null);
  assert.equal(newKeyDismissed(s), s);
});

test("revoking drops the key, and the shown key when it was that one", () => {
  let s = keyCreated(keysLoaded({}, [A]), { ...B, key: "plr_secret" });
  s = keyRevoked(s, "a");
  assert.deepEqual(Object.keys(s.apiKeys), ["b"]);
  assert.equal(s.newKey.key, "plr_secret");
  s = keyRevoked(s, "b");
  assert.deepEqual(s.apiKeys, {});
  assert.equal(s.newKey, null);
  assert.equal(keyRevoked(s, "gone"), s);
  assert.equal(keyCreated(s, { id: "x" }), s, "an answer without a key changes nothing");
});

test("dates read as people say them", () => {
  const now = Date.parse("2026-01-10T12:00:00Z");
  assert.equal(lastUsed(A, now), "never used");
  assert.equal(lastUsed({ last_used_at: "2026-01-10T11:59:30Z" }, now), "used just now");
  assert.equal(lastUsed({ last_used_at: "2026-01-10T11:00:00Z" }, now), "used 1 h ago");
  assert.equal(lastUsed({ last_used_at: "2026-01-09T12:00:00Z" }, now), "used 1 day ago");
  assert.equal(expiry(A, now), "no expiry");
  assert.equal(expiry({ expires_at: "2026-01-10T11:00:00Z" }, now), "expired");
  assert.equal(expiry({ expires_at: "2026-01-10T18:00:00Z" }, now), "expires today");
  assert.equal(expiry({ expires_at: "2026-01-13T13:00:00Z" }, now), "expires in 3 days");
});

test("a key's usage in one line", () => {
  assert.equal(usageLine(A), "no calls yet");
  assert.equal(usageLine({ usage: { requests: 0 } }), "no calls yet");
  assert.equal(usageLine({ usage: { requests: 1, input_tokens: 1200, output_tokens: 34, cost_usd: 0 } }), "1 call · 1,234 tokens · $0");
  assert.equal(usageLine({ usage: { requests: 3, input_tokens: 10, output_tokens: 5, cost_usd: 0.5 } }), "3 calls · 15 tokens · $0.500");
});
