// The voice bar of a voice room: push-to-talk (hold the button, or press Space on it to
// start and again to send), the microphone level, who holds the floor, what the
// assistant is doing, the speaker's words as they are transcribed. The assistant's audio
// is played by audio/player.js for every member with the room open.

import { startCapture } from "../audio/capture.js";
import { can } from "../lib/permissions.js";
import { VOICE_ROOM, canTalk, voiceLine, voiceOf } from "../lib/voice.js";
import { $, setText, show } from "./dom.js";

const current = (s) => (s.route.page === "rooms" && s.route.roomId ? s.rooms[s.route.roomId] || null : null);
const turn = { roomId: null, stop: null, starting: false, release: false, ending: false };
let shownRoom = null;

export function mount({ store, actions, player }) {
  const btn = $("talk-btn");
  player.onReceived = (counts) => { $("voice-bar").dataset.audioChunks = String(counts.received); };

  const refuse = (sentence) => {
    store.apply((s) => ({ ...s, errors: { ...s.errors, voice: sentence } }));
    end(store, actions);
  };
  const begin = async () => {
    const v = current(store.get());
    if (!v || turn.roomId || turn.starting) return;
    player.unlock();
    player.stop();
    turn.starting = true;
    turn.release = false;
    const roomId = v.room.room_id;
    try {
      if (!(await actions.voiceStart(roomId))) return;
      turn.roomId = roomId;
      drawButton(store.get());
      try {
        turn.stop = await startCapture({
          onChunk: (bytes) => actions.voiceChunk(roomId, bytes, refuse),
          onLevel: (level) => { $("voice-level").value = level; },
        });
      } catch (err) {
        turn.roomId = null;
        await actions.voiceCancel(roomId);
        store.apply((s) => ({ ...s, errors: { ...s.errors, voice: `The microphone is not available (${err.name || err}). Allow it for this site and try again.` } }));
        return;
      }
    } finally {
      turn.starting = false;
      drawButton(store.get());
    }
    if (turn.release) end(store, actions); // let go while the microphone was starting
  };
  const release = () => {
    if (turn.starting) turn.release = true;
    else end(store, actions);
  };

  btn.addEventListener("pointerdown", (e) => { if (e.button === 0) { btn.setPointerCapture?.(e.pointerId); begin(); } });
  btn.addEventListener("pointerup", release);
  btn.addEventListener("pointercancel", release);
  btn.addEventListener("keydown", (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    if (e.repeat) return;
    if (turn.roomId || turn.starting) release(); else begin();
  });
  btn.addEventListener("click", (e) => e.preventDefault()); // keyboard "click" is handled above
  $("stop-btn").addEventListener("click", () => player.stop());
  // Browsers keep audio contexts suspended until the page is used.
  document.addEventListener("pointerdown", () => player.unlock(), { once: true });
}

async function end(store, actions) {
  if (!turn.roomId || turn.ending) return;
  turn.ending = true;
  const { roomId, stop } = turn;
  try {
    if (stop) await stop(); // the last partial chunk goes out before voice_stop
    turn.stop = null;
    turn.roomId = null;
    drawButton(store.get());
    await actions.voiceStop(roomId);
  } finally {
    turn.ending = false;
    turn.roomId = null;
    drawButton(store.get());
  }
}

function drawButton(s) {
  const v = current(s);
  const btn = $("talk-btn");
  const talking = Boolean(turn.roomId) || turn.starting;
  const me = s.me.user_id;
  const allowed = Boolean(v) && can(v.room, me, "write") && (talking || canTalk(voiceOf(v), me));
  btn.disabled = !allowed;
  btn.setAttribute("aria-pressed", String(talking));
  setText(btn, talking ? "Release to send" : "Hold to talk");
}

export function render(s, prev, ctx) {
  const v = current(s);
  const pv = prev ? current(prev) : undefined;
  const voiceRoom = Boolean(v) && v.room.room_type === VOICE_ROOM;
  if (prev && v === pv && s.errors === prev.errors && s.route === prev.route) return;
  const roomId = v ? v.room.room_id : null;
  if (roomId !== shownRoom) {
    ctx.player.stop(); // another room: its answer is not for this one
    shownRoom = roomId;
  }
  show($("voice-bar"), voiceRoom);
  if (!voiceRoom) return;
  const voice = voiceOf(v);
  setText($("voice-status"), voiceLine(voice, s.me.user_id));
  $("voice-bar").dataset.assistant = voice.assistant;
  setText($("voice-transcript"), voice.transcript);
  setText($("voice-error"), s.errors.voice || "");
  drawButton(s);
}
