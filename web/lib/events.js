// THE table: every server event (SPEC §3) and the update it makes to the page's state.
// Each entry is (state, payload, now) → state. Connection lifecycle (connect, disconnect,
// connect_error, session_expired) is handled in app.js because it starts network work.

import * as u from "./update.js";
import { voiceState, voiceTranscript } from "./voice.js";

export const SERVER_EVENTS = {
  room_created: (s, d) => u.roomAdded(s, d && d.room), // from another tab of mine
  room_joined: (s, d) => u.roomInfo(s, d),
  room_updated: (s, d) => u.roomUpdated(s, d && d.room),
  room_deleted: (s, d) => u.roomRemoved(s, d && d.room_id, "This room was deleted, or you are no longer a member."),
  room_invited: (s, d) => u.roomAdded(s, d && d.room, { invited: true }),
  user_joined: (s, d) => u.userJoined(s, d),
  user_left: (s, d) => u.userLeft(s, d),
  user_typing: (s, d, now) => u.userTyping(s, d, now),
  message_received: (s, d, now) => u.messageReceived(s, d && d.message, now),
  assistant_started: (s, d, now) => u.assistantStarted(s, d, now),
  assistant_delta: (s, d, now) => u.assistantDelta(s, d, now),
  assistant_tool_call: (s, d) => u.assistantToolCall(s, d),
  assistant_done: (s, d, now) => u.assistantDone(s, d, now),
  document_status: (s, d) => u.documentStatus(s, d),
  voice_state: (s, d) => voiceState(s, d),
  voice_transcript: (s, d) => voiceTranscript(s, d),
  error: (s, d) => u.notice(s, (d && d.message) || "The server reported an error."),
};

/** Apply a server event by name; unknown names leave the state as it was. */
export function onServerEvent(state, name, payload, now = Date.now()) {
  const update = Object.hasOwn(SERVER_EVENTS, name) ? SERVER_EVENTS[name] : null;
  return update ? update(state, payload, now) : state;
}
