// A message's attached files: image thumbnails, audio and video players, download links.

import { fileUrl } from "../api.js";
import { h } from "./dom.js";

/** Whether every file a message of the room attaches is in its loaded file list. */
export function attachmentsKnown(v) {
  const known = new Set((v.files || []).map((f) => f.file_id));
  for (const m of Object.values(v.messages)) {
    for (const id of m.file_ids || []) if (!known.has(id)) return false;
  }
  return true;
}

function one(roomId, id, rec) {
  const url = fileUrl(roomId, id);
  const name = rec ? rec.filename : "Attached file";
  const type = rec ? String(rec.content_type || "") : "";
  if (type.startsWith("image/") && type !== "image/svg+xml") {
    return h("li.attach-item", {}, h("a", { href: url, target: "_blank", rel: "noopener" },
      h("img.attach-thumb", { src: url, alt: name, loading: "lazy" })));
  }
  if (type.startsWith("audio/")) {
    return h("li.attach-item", {}, h("audio", { controls: "", preload: "none", src: url, "aria-label": name }),
      h("span.muted", { text: name }));
  }
  if (type.startsWith("video/")) {
    return h("li.attach-item", {}, h("video.attach-video", { controls: "", preload: "metadata", src: url, "aria-label": name }));
  }
  return h("li.attach-item", {}, h("a.button", { href: url, download: name, text: name }));
}

/** Draw (or leave as drawn) the files of `msg` inside its element. */
export function renderAttachments(el, msg, files) {
  const ids = msg.file_ids || [];
  let box = el.querySelector(":scope > .msg-files");
  if (!ids.length) {
    if (box) box.remove();
    return;
  }
  const records = new Map((files || []).map((f) => [f.file_id, f]));
  const key = ids.map((id) => `${id}:${records.has(id) ? records.get(id).content_type : "?"}`).join(",");
  if (box && box.dataset.key === key) return;
  const list = h("ul.msg-files", { "aria-label": "Attached files", dataset: { key } },
    ...ids.map((id) => one(msg.room_id, id, records.get(id))));
  if (box) box.replaceWith(list);
  else el.querySelector(".msg-body").after(list);
}
