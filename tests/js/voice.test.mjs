// Voice rooms, the pure part: voice_state / voice_transcript in the state, the voice bar's
// sentence and who may talk, PCM16 conversion and 250 ms chunks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { onServerEvent } from "../../web/lib/events.js";
import * as u from "../../web/lib/update.js";
import { canTalk, fromPcm16, IDLE, makeChunker, toPcm16, voiceLine, voiceOf } from "../../web/lib/voice.js";

const me = { user_id: "me", name: "Me", email: "me@example.com" };
const room = { room_id: "r", title: "Voice", owner_id: "me", room_type: "openai_realtime", members: [{ user_id: "me", name: "Me", role: "owner" }], last_seq: 0, created_at: "2025-01-01T00:00:00Z", updated_at: "2025-01-01T00:00:00Z" };

function loaded() {
  return u.roomJoined(u.initialState(me, {}), { room, online: ["me"], messages: [] }, { full: true, now: 0 });
}

test("a turn: listening with the speaker, transcript deltas then the final text, idle", () => {
  let s = loaded();
  assert.equal(voiceOf(s.rooms.r), IDLE);
  s = onServerEvent(s, "voice_state", { room_id: "r", speaker: { user_id: "ann", name: "Ann" }, assistant: "listening" });
  assert.deepEqual(voiceOf(s.rooms.r), { speaker: { user_id: "ann", name: "Ann" }, assistant: "listening", transcript: "" });
  assert.equal(voiceLine(voiceOf(s.rooms.r), "me"), "Ann is speaking…");
  assert.equal(canTalk(voiceOf(s.rooms.r), "me"), false);
  s = onServerEvent(s, "voice_state", { room_id: "r", speaker: null, assistant: "thinking" });
  s = onServerEvent(s, "voice_transcript", { room_id: "r", user_id: "ann", text: "what ", final: false });
  s = onServerEvent(s, "voice_transcript", { room_id: "r", user_id: "ann", text: "time", final: false });
  assert.equal(voiceOf(s.rooms.r).transcript, "what time");
  s = onServerEvent(s, "voice_transcript", { room_id: "r", user_id: "ann", text: "What time is it?", final: true });
  assert.equal(voiceOf(s.rooms.r).transcript, "What time is it?");
  assert.equal(voiceLine(voiceOf(s.rooms.r), "me"), "Assistant is thinking…");
  assert.equal(canTalk(voiceOf(s.rooms.r), "me"), false, "not while the assistant answers");
  s = onServerEvent(s, "voice_state", { room_id: "r", speaker: null, assistant: "speaking" });
  s = onServerEvent(s, "voice_state", { room_id: "r", speaker: null, assistant: "idle" });
  assert.equal(canTalk(voiceOf(s.rooms.r), "me"), true);
  assert.equal(voiceOf(s.rooms.r).transcript, "What time is it?", "the last words stay until the next turn");
  s = onServerEvent(s, "voice_state", { room_id: "r", speaker: { user_id: "me", name: "Me" }, assistant: "listening" });
  assert.equal(voiceOf(s.rooms.r).transcript, "");
  assert.equal(voiceLine(voiceOf(s.rooms.r), "me"), "You are speaking…");
  assert.equal(canTalk(voiceOf(s.rooms.r), "me"), true, "the speaker can let go");
});

test("voice events for unknown rooms or malformed ones change nothing", () => {
  const s = loaded();
  for (const [name, d] of [
    ["voice_state", { room_id: "nope", speaker: null, assistant: "idle" }],
    ["voice_state", { room_id: "r", speaker: null, assistant: "shouting" }],
    ["voice_transcript", { room_id: "nope", user_id: "x", text: "hi", final: true }],
    ["voice_transcript", { room_id: "r", user_id: "x", text: 7, final: true }],
  ]) assert.equal(onServerEvent(s, name, d), s, `${name} ${JSON.stringify(d)}`);
  for (const junk of [undefined, null, 7, "x", [], {}]) {
    assert.equal(onServerEvent(s, "voice_state", junk), s);
    assert.equal(onServerEvent(s, "voice_transcript", junk), s);
  }
});

test("PCM16: floats to little-endian samples and back, clipped", () => {
  const bytes = toPcm16(Float32Array.from([0, 0.5, -0.5, 1, -1, 2, -2]));
  assert.equal(bytes.length, 14);
  const view = new DataView(bytes.buffer);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((i) => view.getInt16(i * 2, true)),
    [0, 16383, -16384, 32767, -32768, 32767, -32768]);
  const back = fromPcm16(bytes);
  assert.ok(Math.abs(back[1] - 0.5) < 1e-3 && back[4] === -1);
  assert.equal(fromPcm16(new Uint8Array(3)).length, 1, "an odd byte is ignored");
});

test("chunks of 12,000 bytes (250 ms at 24 kHz), the rest on flush", () => {
  const chunker = makeChunker();
  assert.deepEqual(chunker.push(new Uint8Array(5000)), []);
  const ready = chunker.push(new Uint8Array(20000).fill(1));
  assert.deepEqual(ready.map((c) => c.length), [12000, 12000]);
  assert.equal(ready[0][4999], 0);
  assert.equal(ready[0][5000], 1);
  assert.equal(chunker.flush().length, 1000);
  assert.equal(chunker.flush().length, 0);
});
