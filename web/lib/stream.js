// Delta assembly for streamed assistant replies: deltas are numbered from 1 (SPEC §3);
// apply them in order, hold the ones that arrive early, drop repeats.

/** A new, empty stream of a reply (`calls`: its tool calls so far, see tools.js). */
export function newStream({ model = null, reply_to = null, created_at = null, since = 0 } = {}) {
  return { text: "", applied: 0, pending: {}, calls: [], model, reply_to, created_at, since };
}

function drain(stream) {
  let { text, applied } = stream;
  const pending = { ...stream.pending };
  while (Object.hasOwn(pending, applied + 1)) {
    applied += 1;
    text += pending[applied];
    delete pending[applied];
  }
  return { ...stream, text, applied, pending };
}

/** The stream with delta `seq` applied (or held until the ones before it arrive). */
export function applyDelta(stream, seq, delta) {
  if (!Number.isInteger(seq) || seq < 1 || seq <= stream.applied || Object.hasOwn(stream.pending, seq)) {
    return stream;
  }
  return drain({ ...stream, pending: { ...stream.pending, [seq]: String(delta ?? "") } });
}

/**
 * The stream caught up with a snapshot `{seq, content}` (join_room's active_stream):
 * the snapshot holds deltas 1..seq; held deltas after it still apply.
 */
export function seedStream(stream, seq, content) {
  if (!Number.isInteger(seq) || seq <= stream.applied) return stream;
  const pending = {};
  for (const [k, v] of Object.entries(stream.pending)) if (Number(k) > seq) pending[k] = v;
  return drain({ ...stream, text: String(content ?? ""), applied: seq, pending });
}
