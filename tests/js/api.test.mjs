// The server's own sentence for a refused action.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError, serverSentence } from "../../web/api.js";

test("the server's message becomes a sentence", () => {
  assert.equal(serverSentence(new ApiError("conflict", "the room is full")), "The room is full.");
  assert.equal(serverSentence(new ApiError("forbidden", "only the room owner can do this")), "Only the room owner can do this.");
  assert.equal(serverSentence(new ApiError("payload_too_large", "big.txt: larger than 1 MB")), "big.txt: larger than 1 MB.", "a file name keeps its case");
  assert.equal(serverSentence({ code: "invalid_payload", message: "title: must not be empty" }), "Title: must not be empty.");
});

test("without a message of its own, the code's sentence", () => {
  assert.match(serverSentence(new ApiError("network", "network error")), /Cannot reach the server/);
  assert.match(serverSentence(new ApiError("timeout", "no answer to invite")), /took too long/);
  assert.match(serverSentence(new ApiError("not_found", "HTTP 404")), /does not exist/);
  assert.match(serverSentence(null), /went wrong/);
});
