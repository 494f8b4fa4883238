// What a member may do in a room, by role (SPEC §3: owner, member, viewer). The server
// decides; the page uses this only to offer the controls that can succeed.

/** The user's role in the room: "owner", "member", "viewer", or null (not a member). */
export function roleOf(room, userId) {
  if (!room || !userId) return null;
  const m = (room.members || []).find((x) => x.user_id === userId);
  if (m) return m.role;
  return room.owner_id === userId ? "owner" : null;
}

const RULES = {
  read: ["owner", "member", "viewer"],
  write: ["owner", "member"], // send, regenerate, typing
  upload: ["owner", "member"],
  delete_file: ["owner", "member"],
  list_files: ["owner", "member", "viewer"],
  invite: ["owner"],
  edit_settings: ["owner"],
  manage_members: ["owner"],
  delete_room: ["owner"],
  leave: ["member", "viewer"], // the owner deletes the room instead
};

/** Whether the user may do `action` in the room. */
export function can(room, userId, action) {
  const allowed = RULES[action];
  if (!allowed) throw new Error(`unknown action ${action}`);
  return allowed.includes(roleOf(room, userId));
}

/** Whether `me` may delete `file`: its uploader or the room owner (members with write). */
export function canDeleteFile(room, me, file) {
  if (!can(room, me, "delete_file") || !file) return false;
  return roleOf(room, me) === "owner" || file.uploaded_by === me;
}

/** Whether `me` may change the role of, or remove, member `target`. */
export function canManage(room, me, target) {
  return can(room, me, "manage_members") && target !== me && roleOf(room, target) !== "owner"
    && roleOf(room, target) !== null;
}
