// The frame: page links, connection status, who is logged in, notices, the page shown.

import { roomsWithNews } from "../lib/unread.js";
import { $, h, setText, show } from "./dom.js";

const CONN = { connecting: "Connecting…", online: "", offline: "Reconnecting…" };
const timers = new Map(); // notice id → auto-dismiss timer

export function mount({ store, actions, logout }) {
  const me = store.get().me;
  setText($("me-name"), me.name || me.email);
  $("me-name").title = `Logged in as ${me.email}`;
  $("logout-btn").addEventListener("click", logout);
  $("toasts").addEventListener("click", (e) => {
    const btn = e.target.closest("button[data-notice]");
    if (btn) actions.dismiss(Number(btn.dataset.notice));
  });
}

export function render(s, prev, { actions }) {
  if (prev && s.route === prev.route && s.conn === prev.conn && s.notices === prev.notices
      && s.rooms === prev.rooms && s.readMarks === prev.readMarks) return;
  setText($("conn-status"), CONN[s.conn] || "");
  for (const a of document.querySelectorAll(".pages a")) {
    if (a.dataset.page === s.route.page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  show($("room-view"), s.route.page === "rooms");
  show($("documents-page"), s.route.page === "documents");
  show($("public-page"), s.route.page === "public");
  show($("usage-page"), s.route.page === "usage");
  show($("keys-page"), s.route.page === "keys");
  document.body.dataset.page = s.route.page;
  document.body.dataset.room = s.route.roomId ? "open" : "none";

  const news = roomsWithNews(Object.values(s.rooms), s.readMarks, s.route.roomId);
  const v = s.route.roomId && s.rooms[s.route.roomId];
  const where = v ? v.room.title : { documents: "Documents", public: "Public rooms", usage: "Usage", keys: "API keys" }[s.route.page];
  document.title = `${news ? `(${news}) ` : ""}${where ? `${where} · ` : ""}Parlour`;

  if (!prev || s.notices !== prev.notices) renderNotices(s.notices, actions);
}

function renderNotices(notices, actions) {
  const box = $("toasts");
  const shown = new Set();
  for (const n of notices) {
    shown.add(n.id);
    if (!timers.has(n.id)) timers.set(n.id, setTimeout(() => actions.dismiss(n.id), n.kind === "error" ? 10000 : 6000));
  }
  for (const [id, t] of timers) if (!shown.has(id)) { clearTimeout(t); timers.delete(id); }
  box.replaceChildren(...notices.map((n) => h(`div.toast.${n.kind}`, {},
    h("span.toast-text", { text: n.text }, n.detail ? h("span.toast-detail", { text: n.detail }) : null),
    h("button", { type: "button", text: "Dismiss", dataset: { notice: String(n.id) } }))));
}
