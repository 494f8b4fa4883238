// Tools in the page: tool-call events merged into a reply by call_id (live, replayed, late,
// malformed, for unknown rooms and messages), the stored message's calls, and the owner's
// tool checkboxes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { onServerEvent } from "../../web/lib/events.js";
import { formatArguments, formatResult, mergeToolCall, sameTools, storedCalls, toolCall, toolChoices } from "../../web/lib/tools.js";
import * as u from "../../web/lib/update.js";

const me = { user_id: "me", name: "Me", email: "me@example.com" };
const room = (id) => ({ room_id: id, title: id, owner_id: "me", members: [{ user_id: "me", name: "Me", role: "owner" }], last_seq: 1, created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:00Z", tools: ["calendar_list_events"] });
const question = { message_id: "q", room_id: "r", seq: 1, role: "user", author: { user_id: "me", name: "Me" }, content: "tomorrow?", status: "complete", created_at: "2025-01-01T00:00:01Z" };
const ev = (status, extra = {}) => ({ room_id: "r", message_id: "a", call_id: "c1", name: "calendar_list_events", arguments: '{"time_min":"2025-01-02"}', status, ...extra });

function replying() {
  let s = u.initialState(me, {});
  s = u.roomJoined(s, { room: room("r"), online: ["me"], messages: [question] }, { full: true, now: 0 });
  return onServerEvent(s, "assistant_started", { room_id: "r", message_id: "a", reply_to: "q", model: "scripted:tools" }, 1);
}

test("a call shows running, then done with its result, in the reply being written", () => {
  let s = replying();
  s = onServerEvent(s, "assistant_tool_call", ev("running"));
  assert.deepEqual(s.rooms.r.streams.a.calls, [{ call_id: "c1", name: "calendar_list_events", arguments: '{"time_min":"2025-01-02"}', status: "running" }]);
  s = onServerEvent(s, "assistant_tool_call", ev("done", { result: "Dentist at 9" }));
  assert.equal(s.rooms.r.streams.a.calls.length, 1, "merged by call_id, not added");
  assert.equal(s.rooms.r.streams.a.calls[0].status, "done");
  assert.equal(s.rooms.r.streams.a.calls[0].result, "Dentist at 9");
  assert.equal(onServerEvent(s, "assistant_tool_call", ev("done", { result: "Dentist at 9" })), s, "a repeat changes nothing");
});

test("several calls keep the order they started in; a late `running` does not undo an end", () => {
  let s = replying();
  s = onServerEvent(s, "assistant_tool_call", ev("running", { call_id: "c1" }));
  s = onServerEvent(s, "assistant_tool_call", ev("running", { call_id: "c2", name: "notion_search" }));
  s = onServerEvent(s, "assistant_tool_call", ev("error", { call_id: "c2", name: "notion_search", result: "error: 503" }));
  s = onServerEvent(s, "assistant_tool_call", ev("done", { call_id: "c1", result: "ok" }));
  assert.deepEqual(s.rooms.r.streams.a.calls.map((c) => [c.call_id, c.status]), [["c1", "done"], ["c2", "error"]]);
  assert.equal(onServerEvent(s, "assistant_tool_call", ev("running", { call_id: "c2", name: "notion_search" })), s);
  // An end seen before its start (a page that joined mid-call) is shown as it is.
  s = onServerEvent(s, "assistant_tool_call", ev("done", { call_id: "c3", result: "x" }));
  assert.deepEqual(s.rooms.r.streams.a.calls.map((c) => c.call_id), ["c1", "c2", "c3"]);
});

test("events for unknown rooms, unknown messages or finished replies change nothing", () => {
  let s = replying();
  for (const e of [ev("running", { room_id: "nope" }), ev("running", { message_id: "ghost" })]) {
    assert.equal(onServerEvent(s, "assistant_tool_call", e), s);
  }
  const final = { ...question, message_id: "a", seq: 2, role: "assistant", author: null, content: "Here.", reply_to: "q", tool_calls: [{ ...ev("done", { result: "r" }) }] };
  s = onServerEvent(s, "assistant_done", { room_id: "r", message_id: "a", finish_reason: "stop", message: final }, 3);
  assert.deepEqual(s.rooms.r.streams, {});
  assert.equal(onServerEvent(s, "assistant_tool_call", ev("running", { call_id: "late" })), s, "after the final message");
  assert.equal(s.rooms.r.messages.a.tool_calls.length, 1, "the final message keeps its calls");
});

test("malformed tool-call events never throw and change nothing", () => {
  const s = replying();
  const bad = [undefined, null, 7, "x", [], {}, { room_id: "r" }, { room_id: "r", message_id: "a" },
    ev("running", { call_id: "" }), ev("running", { call_id: 5 }), ev("running", { name: null }),
    ev("finished"), ev(undefined)];
  for (const e of bad) assert.equal(onServerEvent(s, "assistant_tool_call", e), s, JSON.stringify(e));
});

test("toolCall cleans arguments and results; mergeToolCall is bounded", () => {
  assert.equal(toolCall(ev("running", { arguments: { a: 1 } })).arguments, '{"a":1}');
  assert.equal(toolCall(ev("running", { arguments: null })).arguments, "");
  assert.equal(toolCall(ev("done", { result: "x".repeat(10000) })).result.length, 4000);
  assert.equal(toolCall(ev("done", { result: 5 })).result, undefined);
  let calls = [];
  for (let i = 0; i < 150; i++) calls = mergeToolCall(calls, ev("running", { call_id: `c${i}` }));
  assert.equal(calls.length, 100);
});

test("stored tool_calls render the same after a reload; malformed entries are left out", () => {
  const stored = [ev("done", { result: "r" }), { call_id: "x" }, null, ev("error", { call_id: "c2", result: "error: timeout" })];
  assert.deepEqual(storedCalls(stored).map((c) => [c.call_id, c.status]), [["c1", "done"], ["c2", "error"]]);
  assert.deepEqual(storedCalls(undefined), []);
  assert.deepEqual(storedCalls("x"), []);
  // Replayed history keeps them on the message (and a message gaining them is a change).
  let s = u.initialState(me, {});
  const plain = { ...question, message_id: "a", seq: 2, role: "assistant", author: null, content: "Here." };
  s = u.roomJoined(s, { room: room("r"), online: [], messages: [question, plain] }, { full: true, now: 0 });
  const next = u.messageReceived(s, { ...plain, tool_calls: stored }, 1);
  assert.notEqual(next, s);
  assert.equal(next.rooms.r.messages.a.tool_calls, stored);
});

test("arguments: compact JSON on one line, indented in full, raw text kept", () => {
  assert.deepEqual(formatArguments('{"time_min": "2025-01-02",\n "max_results": 5}'),
    { line: '{"time_min":"2025-01-02","max_results":5}', full: '{\n  "time_min": "2025-01-02",\n  "max_results": 5\n}', cut: false });
  assert.deepEqual(formatArguments("{}"), { line: "no arguments", full: "", cut: false });
  assert.equal(formatArguments("not json").line, "not json");
  const long = formatArguments(JSON.stringify({ content: "y".repeat(500) }), 50);
  assert.equal(long.cut, true);
  assert.equal(long.line.length, 50);
  assert.ok(long.line.endsWith("…"));
  assert.equal(formatArguments(undefined).line, "");
});

test("results: JSON indented, other text (or JSON cut short) as it came", () => {
  assert.equal(formatResult('{"events":[{"summary":"Dentist"}]}'), '{\n  "events": [\n    {\n      "summary": "Dentist"\n    }\n  ]\n}');
  assert.equal(formatResult('{"events":[{"summ'), '{"events":[{"summ');
  assert.equal(formatResult("error: the calendar API answered 503"), "error: the calendar API answered 503");
  assert.equal(formatResult(""), "(empty)");
  assert.equal(formatResult(undefined), "(empty)");
});

test("tool choices: unconfigured tools are off and disabled, with a hint; the room's own stay removable", () => {
  const listed = [
    { name: "search_documents", description: "Search files", source: "builtin", configured: true },
    { name: "calendar_list_events", description: "List events", source: "builtin", configured: false },
    { name: "notion_search", description: "Search Notion", source: "builtin", configured: false },
  ];
  const choices = toolChoices(listed, ["calendar_list_events", "files__read"]);
  assert.deepEqual(choices.map((c) => [c.name, c.checked, c.disabled]), [
    ["search_documents", false, false],
    ["calendar_list_events", true, false], // on but unconfigured: can be turned off
    ["notion_search", false, true],
    ["files__read", true, false], // no longer listed (an MCP server that is down)
  ]);
  assert.equal(choices[0].hint, "");
  assert.match(choices[2].hint, /not set up/i);
  assert.match(choices[1].hint, /uncheck/i);
  assert.match(choices[3].hint, /no longer offered/i);
  assert.deepEqual(toolChoices(null, null), []);
  assert.deepEqual(toolChoices([null, { name: "" }, { name: "a" }, { name: "a" }], []).map((c) => c.name), ["a"]);
});

test("sameTools ignores order", () => {
  assert.ok(sameTools(["a", "b"], ["b", "a"]));
  assert.ok(!sameTools(["a"], ["a", "b"]));
  assert.ok(sameTools([], undefined));
});
