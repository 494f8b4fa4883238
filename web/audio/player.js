// The assistant's voice: assistant_audio chunks (PCM16 mono 24 kHz) played back to back
// with Web Audio, without gaps, in seq order per message; Stop or another answer cuts it.

import { SAMPLE_RATE, fromPcm16 } from "../lib/voice.js";

export function makePlayer() {
  let context = null;
  let next = 0; // when the next chunk starts (context time)
  let messageId = null;
  let expected = 1;
  let held = new Map(); // seq → samples that came early
  const playing = new Set();
  const counts = { received: 0, played: 0 };

  const ctx = () => {
    if (!context) context = new AudioContext({ sampleRate: SAMPLE_RATE });
    if (context.state === "suspended") context.resume().catch(() => {});
    return context;
  };

  function schedule(samples) {
    const c = ctx();
    const buffer = c.createBuffer(1, samples.length, SAMPLE_RATE);
    buffer.copyToChannel(samples, 0);
    const node = c.createBufferSource();
    node.buffer = buffer;
    node.connect(c.destination);
    const at = Math.max(next, c.currentTime + 0.05);
    node.start(at);
    next = at + buffer.duration;
    playing.add(node);
    node.onended = () => playing.delete(node);
    counts.played += 1;
  }

  return {
    counts,
    onReceived: null, // (counts) => void, set by the voice bar
    /** Let audio play after a user gesture (browsers start contexts suspended). */
    unlock() { ctx(); },
    /** One assistant_audio event. */
    play(d) {
      if (!d || typeof d.message_id !== "string" || !Number.isInteger(d.seq)) return;
      const bytes = d.audio instanceof ArrayBuffer ? new Uint8Array(d.audio)
        : ArrayBuffer.isView(d.audio) ? new Uint8Array(d.audio.buffer, d.audio.byteOffset, d.audio.byteLength) : null;
      if (!bytes) return;
      counts.received += 1;
      if (this.onReceived) this.onReceived(counts);
      if (d.message_id !== messageId) {
        this.stop();
        messageId = d.message_id;
        expected = d.seq; // joined mid-answer: start where it is
      }
      if (d.seq < expected) return;
      held.set(d.seq, fromPcm16(bytes));
      while (held.has(expected)) {
        schedule(held.get(expected));
        held.delete(expected);
        expected += 1;
      }
    },
    /** Cut what is playing (Stop, another room). */
    stop() {
      for (const node of playing) { try { node.stop(); } catch { /* already ended */ } }
      playing.clear();
      held = new Map();
      expected = 1;
      messageId = null;
      next = 0;
    },
  };
}
