// Uploads in progress and after: one entry per file, from the first byte sent to the
// end of ingestion (document_status, SPEC §3).

export const MAX_UPLOADS = 20; // entries kept on the page (newest)

/** The phase shown for a server status: processing, ready, stored, failed. */
export function phaseOf(status) {
  return ["processing", "ready", "stored", "failed"].includes(status) ? status : "processing";
}

const clamp = (p) => Math.min(1, Math.max(0, Number.isFinite(Number(p)) ? Number(p) : 0));

/** Entries for files about to be sent: `target` is {scope: "room", room_id} or {scope: "documents"}. */
export function newEntries(ids, names, target) {
  return names.map((name, i) => ({
    id: ids[i], scope: target.scope, room_id: target.room_id || null, name,
    phase: "uploading", progress: 0, key: null, error: "",
  }));
}

export function addEntries(uploads, entries) {
  return [...uploads, ...entries].slice(-MAX_UPLOADS);
}

function mapSome(uploads, pick, change) {
  let changed = false;
  const out = uploads.map((u) => {
    if (!pick(u)) return u;
    const next = change(u);
    if (next !== u) changed = true;
    return next;
  });
  return changed ? out : uploads;
}

/** Bytes sent so far (0..1) for the entries of one request. */
export function progressed(uploads, ids, fraction) {
  const p = clamp(fraction);
  return mapSome(uploads, (u) => ids.includes(u.id) && u.phase === "uploading",
    (u) => (u.progress === p ? u : { ...u, progress: p }));
}

/** The server's status applied to an entry ({status, progress, error}). */
function withStatus(u, st) {
  const phase = phaseOf(st.status);
  const progress = phase === "ready" || phase === "stored" ? 1 : clamp(st.progress);
  if (phase === u.phase && progress === u.progress && (st.error || "") === u.error) return u;
  // Never move back from a final phase to processing (an old event after a newer answer).
  if (u.phase !== "uploading" && u.phase !== "processing" && phase === "processing") return u;
  return { ...u, phase, progress, error: phase === "failed" ? String(st.error || "Could not read this file.") : "" };
}

/**
 * The upload answered with its records (same order as the files): each entry gets its
 * id and the record's status, or a newer status that arrived before the answer (`early`).
 */
export function stored(uploads, ids, records, early = {}) {
  return uploads.map((u) => {
    const i = ids.indexOf(u.id);
    if (i < 0) return u;
    const rec = records[i];
    if (!rec) return { ...u, phase: "failed", error: "The server did not keep this file." };
    const key = rec.file_id || rec.document_id;
    const base = { ...u, key, name: rec.filename || u.name, phase: "processing", progress: 0 };
    return withStatus(withStatus(base, rec), early[key] || rec);
  });
}

/** The request failed: every entry of it shows the sentence. */
export function failed(uploads, ids, sentence) {
  return mapSome(uploads, (u) => ids.includes(u.id),
    (u) => ({ ...u, phase: "failed", error: sentence }));
}

/** A document_status event (or a status read back after a reconnect). */
export function statusChanged(uploads, st) {
  return mapSome(uploads, (u) => u.key === st.document_id, (u) => withStatus(u, st));
}

/** Entries whose final state we may have missed (still processing on the server). */
export function pending(uploads) {
  return uploads.filter((u) => u.key && u.phase === "processing");
}
