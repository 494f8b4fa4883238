// Permissions by role.
import assert from "node:assert/strict";
import { test } from "node:test";
import { can, canDeleteFile, canManage, roleOf } from "../../web/lib/permissions.js";

const room = { owner_id: "o", members: [{ user_id: "o", role: "owner" }, { user_id: "m", role: "member" }, { user_id: "v", role: "viewer" }] };

test("roles come from the member list", () => {
  assert.equal(roleOf(room, "o"), "owner");
  assert.equal(roleOf(room, "v"), "viewer");
  assert.equal(roleOf(room, "x"), null);
  assert.equal(roleOf(null, "o"), null);
});

test("what each role may do", () => {
  assert.ok(can(room, "o", "edit_settings") && can(room, "o", "delete_room") && can(room, "o", "invite"));
  assert.ok(!can(room, "o", "leave"), "the owner deletes the room instead of leaving");
  assert.ok(can(room, "m", "write") && can(room, "m", "upload") && can(room, "m", "leave"));
  assert.ok(!can(room, "m", "edit_settings") && !can(room, "m", "manage_members"));
  assert.ok(can(room, "v", "read") && can(room, "v", "list_files") && can(room, "v", "leave"));
  assert.ok(!can(room, "v", "write") && !can(room, "v", "delete_file"));
  assert.ok(!can(room, "x", "read"));
  assert.throws(() => can(room, "o", "fly"));
});

test("only the owner manages others, never themself", () => {
  assert.ok(canManage(room, "o", "m") && canManage(room, "o", "v"));
  assert.ok(!canManage(room, "o", "o") && !canManage(room, "m", "v") && !canManage(room, "o", "x"));
});

test("a file is deleted by its uploader or the room owner", () => {
  const mine = { file_id: "f1", uploaded_by: "m" };
  const owners = { file_id: "f2", uploaded_by: "o" };
  assert.ok(canDeleteFile(room, "m", mine) && !canDeleteFile(room, "m", owners));
  assert.ok(canDeleteFile(room, "o", mine) && canDeleteFile(room, "o", owners));
  assert.ok(!canDeleteFile(room, "v", { file_id: "f3", uploaded_by: "v" }));
});
