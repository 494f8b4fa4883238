// Personal API keys (the "API keys" page): pure updates and how a key's dates read.
// `s.apiKeys` is undefined until GET /api/v1/keys answers, then id → key record.
// `s.newKey` holds the one answer that carries a key itself ({id, name, key}) until the
// user dismisses it: the server never shows that key again.

import { formatCost, formatNumber } from "./format.js";

/** GET /api/v1/keys answered (malformed entries left out). */
export function keysLoaded(s, keys) {
  const apiKeys = {};
  for (const k of Array.isArray(keys) ? keys : []) if (k && typeof k.id === "string" && k.id) apiKeys[k.id] = k;
  return { ...s, apiKeys };
}

/** POST /api/v1/keys answered: the key joins the list and is shown once. */
export function keyCreated(s, created) {
  if (!created || typeof created.id !== "string" || typeof created.key !== "string") return s;
  const { key, ...record } = created;
  const apiKeys = { ...(s.apiKeys || {}), [created.id]: { last_used_at: null, ...record } };
  return { ...s, apiKeys, newKey: { id: created.id, name: created.name, key } };
}

/** DELETE answered: the key leaves the list (and the shown key, if it was that one). */
export function keyRevoked(s, id) {
  const had = s.apiKeys && s.apiKeys[id];
  const newKey = s.newKey && s.newKey.id === id ? null : s.newKey || null;
  if (!had && newKey === (s.newKey || null)) return s;
  const apiKeys = { ...(s.apiKeys || {}) };
  delete apiKeys[id];
  return { ...s, apiKeys, newKey };
}

/** The user is done with the key shown once. */
export function newKeyDismissed(s) {
  return s.newKey ? { ...s, newKey: null } : s;
}

/** Keys newest first. */
export function keyList(s) {
  return Object.values(s.apiKeys || {}).sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
}

/** "3 calls · 1,234 tokens · $0.0012" / "no calls yet" (the key's usage from GET /keys). */
export function usageLine(key) {
  const u = key && key.usage;
  const calls = Number(u && u.requests) || 0;
  if (!calls) return "no calls yet";
  const tokens = (Number(u.input_tokens) || 0) + (Number(u.output_tokens) || 0);
  return `${formatNumber(calls)} call${calls === 1 ? "" : "s"} · ${formatNumber(tokens)} tokens · ${formatCost(u.cost_usd)}`;
}

const DAY = 86_400_000;

function ago(ms) {
  if (ms < 60_000) return "just now";
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ago`;
  if (ms < DAY) return `${Math.floor(ms / 3_600_000)} h ago`;
  const days = Math.floor(ms / DAY);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}

/** "used 5 min ago" / "never used" (`now`: ms since the epoch). */
export function lastUsed(key, now) {
  const t = Date.parse(key && key.last_used_at);
  return Number.isFinite(t) ? `used ${ago(Math.max(0, now - t))}` : "never used";
}

/** "no expiry" / "expires in 3 days" / "expires today" / "expired". */
export function expiry(key, now) {
  const t = Date.parse(key && key.expires_at);
  if (!Number.isFinite(t)) return "no expiry";
  if (t <= now) return "expired";
  const days = Math.floor((t - now) / DAY);
  if (days === 0) return "expires today";
  return `expires in ${days} day${days === 1 ? "" : "s"}`;
}
