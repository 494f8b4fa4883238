// Who is online and who is typing in a room.

export const TYPING_TTL_MS = 8000; // a typing notice lapses unless renewed

/** The online list with a user added (same list if already there). */
export function addOnline(online, userId) {
  return online.includes(userId) ? online : [...online, userId];
}

/** The online list without a user. */
export function removeOnline(online, userId) {
  return online.includes(userId) ? online.filter((id) => id !== userId) : online;
}

/** Typing map (user_id → expiry time in ms) after a user_typing event. */
export function setTyping(typing, userId, isTyping, now) {
  if (!isTyping) {
    if (!(userId in typing)) return typing;
    const { [userId]: _gone, ...rest } = typing;
    return rest;
  }
  return { ...typing, [userId]: now + TYPING_TTL_MS };
}

function nameOf(room, userId) {
  const m = ((room && room.members) || []).find((x) => x.user_id === userId);
  return (m && m.name) || "Someone";
}

/** "Alice, Bob (you)" — the names of who is online. */
export function onlineNames(room, online, me) {
  return online.map((id) => (id === me ? `${nameOf(room, id)} (you)` : nameOf(room, id)));
}

/** "Alice is typing…" for the typists whose notice has not lapsed (never me). */
export function typingLine(room, typing, now, me) {
  const names = Object.entries(typing)
    .filter(([id, until]) => id !== me && until > now)
    .map(([id]) => nameOf(room, id));
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length > 2) return "Several people are typing…";
  return "";
}

/** When the next typing notice lapses (ms), or null: when the line must be redrawn. */
export function nextTypingExpiry(typing, now) {
  const later = Object.values(typing).filter((t) => t > now);
  return later.length ? Math.min(...later) : null;
}
