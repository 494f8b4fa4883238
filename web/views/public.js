// Public rooms anyone may join.

import { $, h, setText, show } from "./dom.js";

export function mount({ actions }) {
  $("public-list").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-action='join']");
    if (btn) actions.joinPublic(btn.dataset.target);
  });
  $("public-more").addEventListener("click", () => actions.loadPublic(true));
}

export function render(s, prev) {
  if (s.route.page !== "public") return;
  if (prev && prev.route.page === "public" && s.publicRooms === prev.publicRooms && s.rooms === prev.rooms
      && s.errors === prev.errors && s.busy === prev.busy) return;
  const rooms = s.publicRooms || [];
  setText($("public-error"), s.errors.public || "");
  show($("public-empty"), s.publicRooms !== null && rooms.length === 0);
  show($("public-more"), Boolean(s.publicCursor));
  $("public-list").replaceChildren(...rooms.map((r) => {
    const mine = Boolean(s.rooms[r.room_id]);
    const owner = r.members.find((m) => m.user_id === r.owner_id);
    const n = r.members.length;
    return h("li.item", { dataset: { roomId: r.room_id } },
      h("span.item-name", { text: r.title }),
      h("span.muted", { text: `${n} member${n === 1 ? "" : "s"}${owner ? ` · owner ${owner.name}` : ""}` }),
      h("span.item-actions", {}, mine
        ? h("a.button", { href: `#/room/${encodeURIComponent(r.room_id)}`, "aria-label": `Open ${r.title}`, text: "Open" })
        : h("button.primary", { type: "button", dataset: { action: "join", target: r.room_id }, "aria-label": `Join ${r.title}`, disabled: s.busy[`public:${r.room_id}`], text: "Join" })),
      h("p.field-error", { role: "alert", text: s.errors[`public:${r.room_id}`] || "" }));
  }));
}
