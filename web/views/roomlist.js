// The list of the user's rooms, newest activity first, with unread counts.

import { unreadCount } from "../lib/unread.js";
import { $, h, show } from "./dom.js";

export function mount({ actions }) {
  const create = (id, fields) => $(id).addEventListener("click", async () => {
    const btn = $(id);
    btn.disabled = true;
    const ok = await actions.createRoom(fields);
    btn.disabled = false;
    if (ok) requestAnimationFrame(() => { const t = $("room-title-input"); if (t && !t.hidden) t.select(); });
  });
  create("new-room-btn", {});
  create("new-voice-room-btn", { room_type: "openai_realtime", title: "Voice room" });
}

export function render(s, prev) {
  if (prev && s.rooms === prev.rooms && s.readMarks === prev.readMarks && s.route.roomId === prev.route.roomId
      && s.errors["new-room"] === prev.errors["new-room"]) return;
  const current = s.route.roomId;
  const views = Object.values(s.rooms).sort((a, b) => b.activity - a.activity);
  $("room-list").replaceChildren(...views.map((v) => {
    const id = v.room.room_id;
    const count = unreadCount(v, s.readMarks, current);
    const unread = count > 0 || (v.invited && id !== current);
    return h("li", {},
      h("a", {
        href: `#/room/${encodeURIComponent(id)}`,
        "aria-current": id === current ? "page" : null,
        dataset: { roomId: id, unread: unread ? "true" : "false" },
      },
      h("span.room-name", { text: v.room.title }),
      unread ? h("span.unread-dot", { "aria-hidden": "true", text: count > 0 ? String(count) : "new" }) : null,
      unread ? h("span.sr-only", { text: count > 0 ? `, ${count} unread` : ", new" }) : null));
  }));
  show($("rooms-empty"), views.length === 0);
  $("new-room-error").textContent = s.errors["new-room"] || "";
}
