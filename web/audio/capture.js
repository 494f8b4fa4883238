// The microphone, as PCM16 mono 24 kHz chunks: getUserMedia → an AudioContext at 24 kHz
// (the browser resamples) → an AudioWorklet → 250 ms chunks for voice_chunk.

import { CHUNK_BYTES, SAMPLE_RATE, makeChunker, toPcm16 } from "../lib/voice.js";

const WORKLET = new URL("./capture-worklet.js", import.meta.url);

/**
 * Start capturing; `onChunk(bytes)` gets each chunk, `onLevel(0..1)` the level.
 * Resolves to `stop()`, which flushes the last partial chunk and releases the microphone.
 */
export async function startCapture({ onChunk, onLevel }) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
  });
  let context;
  try {
    context = new AudioContext({ sampleRate: SAMPLE_RATE });
    await context.audioWorklet.addModule(WORKLET);
  } catch (err) {
    for (const t of stream.getTracks()) t.stop();
    if (context) context.close();
    throw err;
  }
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "parlour-capture");
  const chunker = makeChunker(CHUNK_BYTES);
  node.port.onmessage = (e) => {
    onLevel(Math.min(1, e.data.level * 4));
    for (const chunk of chunker.push(toPcm16(e.data.samples))) onChunk(chunk);
  };
  source.connect(node);
  return async function stop() {
    node.port.onmessage = null;
    source.disconnect();
    node.disconnect();
    for (const t of stream.getTracks()) t.stop();
    await context.close();
    onLevel(0);
    const rest = chunker.flush();
    if (rest.length) onChunk(rest);
  };
}
