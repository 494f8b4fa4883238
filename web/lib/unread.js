// Unread counts: a read mark (the highest seq seen) per room, kept in localStorage.

/** The newest seq we know of in a room (from its messages or the room record). */
export function knownSeq(view) {
  return Math.max(view.lastSeq || 0, (view.room && view.room.last_seq) || 0);
}

/** How many messages of a room are newer than its read mark (0 for the room on screen). */
export function unreadCount(view, readMarks, currentRoomId = null) {
  if (!view || view.room.room_id === currentRoomId) return 0;
  return Math.max(0, knownSeq(view) - (readMarks[view.room.room_id] || 0));
}

/** Read marks with `roomId` read up to `seq`; the same object when nothing moved. */
export function markRead(readMarks, roomId, seq) {
  if ((readMarks[roomId] || 0) >= seq) return readMarks;
  return { ...readMarks, [roomId]: seq };
}

/** Read marks without a room (it was deleted or we left it). */
export function forgetRoom(readMarks, roomId) {
  if (!(roomId in readMarks)) return readMarks;
  const { [roomId]: _gone, ...rest } = readMarks;
  return rest;
}

/** Rooms with something new: unread messages, or an invitation not yet opened. */
export function roomsWithNews(views, readMarks, currentRoomId) {
  return views.filter((v) => v.room.room_id !== currentRoomId
    && (unreadCount(v, readMarks, currentRoomId) > 0 || v.invited)).length;
}
