// Voice rooms, the pure part: voice_state and voice_transcript in the state, PCM16
// conversion and chunking for the microphone, and the sentence the voice bar shows.

export const VOICE_ROOM = "openai_realtime";
export const SAMPLE_RATE = 24000;
export const CHUNK_BYTES = 12000; // 250 ms of PCM16 mono 24 kHz (the server takes ≤ 1 s)
const ASSISTANT = new Set(["idle", "listening", "thinking", "speaking"]);
export const IDLE = Object.freeze({ speaker: null, assistant: "idle", transcript: "" });

const isObj = (x) => x !== null && typeof x === "object" && !Array.isArray(x);

/** The voice part of a room view (idle when nothing was heard yet). */
export function voiceOf(view) {
  return (view && view.voice) || IDLE;
}

function withVoice(s, roomId, change) {
  const view = s.rooms[roomId];
  if (!view) return s;
  const voice = change(voiceOf(view));
  return voice === voiceOf(view) ? s : { ...s, rooms: { ...s.rooms, [roomId]: { ...view, voice } } };
}

/** voice_state {room_id, speaker, assistant}. */
export function voiceState(s, d) {
  if (!isObj(d) || typeof d.room_id !== "string" || !ASSISTANT.has(d.assistant)) return s;
  const speaker = isObj(d.speaker) && typeof d.speaker.user_id === "string"
    ? { user_id: d.speaker.user_id, name: String(d.speaker.name || "") } : null;
  return withVoice(s, d.room_id, (v) => ({
    speaker,
    assistant: d.assistant,
    // A new turn starts with an empty transcript; the last one stays until then.
    transcript: d.assistant === "listening" ? "" : v.transcript,
  }));
}

/** voice_transcript {room_id, user_id, text, final}: deltas add up, the final one replaces. */
export function voiceTranscript(s, d) {
  if (!isObj(d) || typeof d.room_id !== "string" || typeof d.text !== "string") return s;
  return withVoice(s, d.room_id, (v) => ({ ...v, transcript: d.final ? d.text : v.transcript + d.text }));
}

/** What the voice bar says. */
export function voiceLine(voice, me, assistantName = "Assistant") {
  if (voice.speaker) {
    return voice.speaker.user_id === me ? "You are speaking…" : `${voice.speaker.name || "Someone"} is speaking…`;
  }
  if (voice.assistant === "thinking") return `${assistantName} is thinking…`;
  if (voice.assistant === "speaking") return `${assistantName} is speaking.`;
  return "Hold the button (or press Space on it) to talk.";
}

/** Whether `me` may press the talk button now. */
export function canTalk(voice, me) {
  return !voice.speaker ? voice.assistant === "idle" : voice.speaker.user_id === me;
}

/** Float samples in [-1, 1] → PCM16 little-endian bytes. */
export function toPcm16(samples) {
  const out = new DataView(new ArrayBuffer(samples.length * 2));
  for (let i = 0; i < samples.length; i++) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    out.setInt16(i * 2, x < 0 ? x * 0x8000 : x * 0x7fff, true);
  }
  return new Uint8Array(out.buffer);
}

/** PCM16 little-endian bytes → float samples (for Web Audio playback). */
export function fromPcm16(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength - (bytes.byteLength % 2));
  const out = new Float32Array(view.byteLength / 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 0x8000;
  return out;
}

/** Collects PCM16 bytes and hands out chunks of `size` bytes (flush gives the rest). */
export function makeChunker(size = CHUNK_BYTES) {
  let parts = [];
  let length = 0;
  const take = (n) => {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const part = parts[0];
      const use = Math.min(part.length, n - at);
      out.set(part.subarray(0, use), at);
      at += use;
      if (use === part.length) parts.shift(); else parts[0] = part.subarray(use);
    }
    length -= n;
    return out;
  };
  return {
    push(bytes) {
      parts.push(bytes);
      length += bytes.length;
      const ready = [];
      while (length >= size) ready.push(take(size));
      return ready;
    },
    flush() {
      const rest = length ? take(length - (length % 2)) : new Uint8Array(0);
      parts = [];
      length = 0;
      return rest;
    },
  };
}
