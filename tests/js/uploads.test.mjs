// Uploads: progress, the server's records, document_status before or after the answer.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as u from "../../web/lib/update.js";
import { pending } from "../../web/lib/uploads.js";
import { newEntries } from "../../web/lib/uploads.js";

const me = { user_id: "me", name: "Me", email: "me@example.com" };

test("an upload goes uploading → processing → ready", () => {
  let s = u.initialState(me);
  s = u.uploadsStarted(s, newEntries(["u1"], ["a.txt"], { scope: "documents" }));
  s = u.uploadProgress(s, ["u1"], 0.5);
  assert.equal(s.uploads[0].progress, 0.5);
  s = u.uploadStored(s, ["u1"], [{ document_id: "d1", filename: "a.txt", status: "processing", progress: 0 }], { scope: "documents" });
  assert.equal(s.uploads[0].phase, "processing");
  assert.equal(pending(s.uploads).length, 1);
  s = u.documentStatus(s, { document_id: "d1", status: "ready", progress: 1 });
  assert.equal(s.uploads[0].phase, "ready");
  assert.equal(pending(s.uploads).length, 0);
  const stale = u.documentStatus(s, { document_id: "d1", status: "processing", progress: 0.5 });
  assert.equal(stale.uploads[0].phase, "ready", "an old event never moves a final state back");
});

test("a status that arrives before the upload's answer is applied to it", () => {
  let s = u.initialState(me);
  s = u.uploadsStarted(s, newEntries(["u1"], ["b.txt"], { scope: "room", room_id: "r" }));
  s = u.documentStatus(s, { document_id: "f1", status: "failed", progress: 0, error: "unreadable" });
  s = u.uploadStored(s, ["u1"], [{ file_id: "f1", filename: "b.txt", status: "processing", progress: 0 }], { scope: "room", room_id: "r" });
  assert.equal(s.uploads[0].phase, "failed");
  assert.equal(s.uploads[0].error, "unreadable");
});

test("a refused upload shows the sentence and keeps nothing else", () => {
  let s = u.initialState(me);
  s = u.uploadsStarted(s, newEntries(["u1", "u2"], ["a", "b"], { scope: "documents" }));
  s = u.uploadFailed(s, ["u1", "u2"], "This file is too large.");
  assert.deepEqual(s.uploads.map((x) => [x.phase, x.error]), [["failed", "This file is too large."], ["failed", "This file is too large."]]);
  assert.equal(s.documents, null);
});

test("documents list follows document_status; deleting removes it", () => {
  let s = u.documentsLoaded(u.initialState(me), [{ document_id: "d", filename: "x", status: "processing", progress: 0 }]);
  s = u.documentStatus(s, { document_id: "d", status: "processing", progress: 0.4 });
  assert.equal(s.documents.d.progress, 0.4);
  s = u.documentRemoved(s, "d");
  assert.deepEqual(s.documents, {});
});
