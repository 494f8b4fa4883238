// Tools in the page (SPEC §9): which tools a room's owner can pick in the settings, and
// the calls a reply makes: assistant_tool_call events merged by call_id while the reply
// runs, the stored message's `tool_calls` once it has ended. No DOM here.

const STATUSES = new Set(["running", "done", "error"]);
const FINAL = new Set(["done", "error"]);
const MAX_CALLS = 100; // per reply: tools.max_rounds × calls per round, bounded anyway
const MAX_RESULT = 4000; // the server sends at most 2,000 characters
const MAX_ARGUMENTS = 20000;

const nonEmpty = (x) => typeof x === "string" && x !== "";

/** A call from an event or a stored message, cleaned; null when it is not a call. */
export function toolCall(x) {
  if (!x || typeof x !== "object" || !nonEmpty(x.call_id) || !nonEmpty(x.name) || !STATUSES.has(x.status)) {
    return null;
  }
  let args = x.arguments;
  if (typeof args !== "string") args = args === undefined || args === null ? "" : JSON.stringify(args);
  const call = { call_id: x.call_id, name: x.name, arguments: args.slice(0, MAX_ARGUMENTS), status: x.status };
  if (typeof x.result === "string") call.result = x.result.slice(0, MAX_RESULT);
  return call;
}

const same = (a, b) => a.name === b.name && a.arguments === b.arguments && a.status === b.status && a.result === b.result;

/**
 * The calls of a reply with one assistant_tool_call event merged in, by call_id, in the
 * order they started. A call that has ended is not set back to `running` by a late event;
 * a malformed event or one that changes nothing returns `calls` itself.
 */
export function mergeToolCall(calls, event) {
  const call = toolCall(event);
  const list = Array.isArray(calls) ? calls : [];
  if (!call) return calls;
  const i = list.findIndex((c) => c.call_id === call.call_id);
  if (i < 0) return list.length >= MAX_CALLS ? calls : [...list, call];
  const old = list[i];
  if (FINAL.has(old.status) && call.status === "running") return calls;
  const merged = { ...old, ...call }; // an event without a result keeps the one we have
  if (same(old, merged)) return calls;
  const next = list.slice();
  next[i] = merged;
  return next;
}

/** A stored message's `tool_calls`, cleaned (malformed entries left out). */
export function storedCalls(list) {
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const x of list.slice(0, MAX_CALLS)) {
    const c = toolCall(x);
    if (c) out.push(c);
  }
  return out;
}

/**
 * A call's arguments for a one-line display: compact JSON when they parse (`{}` shows as
 * "no arguments"), the raw text otherwise, cut at `max` characters. `full` is the
 * indented form, `cut` says whether the line lost anything.
 */
export function formatArguments(text, max = 200) {
  const raw = typeof text === "string" ? text : "";
  let line = raw.trim();
  let full = raw;
  try {
    const value = JSON.parse(raw);
    if (value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0) {
      return { line: "no arguments", full: "", cut: false };
    }
    line = JSON.stringify(value);
    full = JSON.stringify(value, null, 2);
  } catch {
    // not JSON: shown as the model wrote it
  }
  const cut = line.length > max;
  return { line: cut ? `${line.slice(0, max - 1)}…` : line, full, cut };
}

/** A call's result for the folded view: indented when it is JSON, as it came otherwise. */
export function formatResult(text) {
  const raw = typeof text === "string" ? text : "";
  if (!raw.trim()) return "(empty)";
  const first = raw.trimStart()[0];
  if (first !== "{" && first !== "[") return raw;
  try {
    return JSON.stringify(JSON.parse(raw), null, 2);
  } catch {
    return raw; // cut at 2,000 characters by the server, or not JSON after all
  }
}

/** Two tool lists name the same tools (order does not matter). */
export function sameTools(a, b) {
  const x = new Set(a || []);
  const y = new Set(b || []);
  return x.size === y.size && [...x].every((n) => y.has(n));
}

/**
 * The checkboxes of the settings: every tool the server lists (GET /api/v1/tools), in its
 * order, then tools the room has that the server no longer lists (so the owner can remove
 * them). A tool the server has not configured cannot be turned on (only off).
 * → [{name, description, source, checked, disabled, hint}]
 */
export function toolChoices(tools, roomTools) {
  const enabled = new Set(Array.isArray(roomTools) ? roomTools : []);
  const out = [];
  const seen = new Set();
  for (const t of Array.isArray(tools) ? tools : []) {
    if (!t || !nonEmpty(t.name) || seen.has(t.name)) continue;
    seen.add(t.name);
    const checked = enabled.has(t.name);
    const configured = t.configured !== false;
    let hint = "";
    if (!configured) hint = checked ? "Not set up on this server: the assistant cannot use it. Uncheck to remove it." : "Not set up on this server.";
    out.push({ name: t.name, description: typeof t.description === "string" ? t.description : "", source: typeof t.source === "string" ? t.source : "", checked, disabled: !configured && !checked, hint });
  }
  for (const name of enabled) {
    if (seen.has(name) || !nonEmpty(name)) continue;
    out.push({ name, description: "", source: "", checked: true, disabled: false, hint: "No longer offered by this server. Uncheck to remove it." });
  }
  return out;
}
