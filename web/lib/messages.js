// A room's messages: merging live events and replayed history by seq (SPEC §3: seq is
// per room, gap-free and increasing), and what to ask for after a reconnect.

const FINAL = new Set(["complete", "cancelled", "error"]);

/** Whether a message is finished (its text will not change). */
export const isFinal = (msg) => FINAL.has(msg && msg.status);

/**
 * Messages (an object message_id → message) with `incoming` merged in. A finished message
 * is never replaced by an older "streaming" snapshot of itself. Returns the same object
 * when nothing changed.
 */
export function mergeMessages(messages, incoming) {
  let out = messages;
  for (const msg of incoming) {
    if (!msg || typeof msg.message_id !== "string") continue;
    const old = out[msg.message_id];
    if (old && isFinal(old) && !isFinal(msg)) continue;
    if (old && old.status === msg.status && old.seq === msg.seq && old.content === msg.content
        && old.usage === msg.usage && old.sources === msg.sources && old.tool_calls === msg.tool_calls) continue;
    if (out === messages) out = { ...messages };
    out[msg.message_id] = old ? { ...old, ...msg } : msg;
  }
  return out;
}

/** The highest seq among the messages (0 when none). */
export function highestSeq(messages, start = 0) {
  let seq = start;
  for (const m of Object.values(messages)) if (Number.isInteger(m.seq) && m.seq > seq) seq = m.seq;
  return seq;
}

/** The messages in seq order (messages without a seq last, by time). */
export function ordered(messages) {
  return Object.values(messages).sort((a, b) => {
    const sa = Number.isInteger(a.seq) ? a.seq : Infinity;
    const sb = Number.isInteger(b.seq) ? b.seq : Infinity;
    if (sa !== sb) return sa - sb;
    return String(a.created_at || "").localeCompare(String(b.created_at || ""));
  });
}

/**
 * The `since_seq` for join_room after a reconnect: everything after the last message we
 * hold, and from before any reply we saw streaming (its final message may have been missed).
 */
export function replaySince(lastSeq, streams) {
  let since = lastSeq;
  for (const s of Object.values(streams)) if (Number.isInteger(s.since)) since = Math.min(since, s.since);
  return Math.max(0, since);
}

/** The user message the newest answer replied to (or the newest user message), for Regenerate. */
export function regenerateTarget(list) {
  for (let i = list.length - 1; i >= 0; i--) {
    const m = list[i];
    if (m.role === "assistant" && m.reply_to) return m.reply_to;
    if (m.role === "user") return m.message_id;
  }
  return null;
}
