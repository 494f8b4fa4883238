// Mounts the signed-in page and returns render(state, previous): each view redraws only
// when the part of the state it shows has changed.

import { $ } from "./dom.js";
import * as documents from "./documents.js";
import * as panels from "./panels.js";
import * as publicRooms from "./public.js";
import * as room from "./room.js";
import * as roomList from "./roomlist.js";
import * as shell from "./shell.js";
import * as usage from "./usage.js";
import * as voice from "./voice.js";

export function mountApp(root, store, actions, { logout, player }) {
  root.replaceChildren($("tpl-app").content.cloneNode(true));
  const views = [shell, roomList, room, voice, panels, documents, publicRooms, usage];
  const ctx = { store, actions, logout, player };
  for (const v of views) v.mount(ctx);
  return (state, prev) => {
    for (const v of views) v.render(state, prev, ctx);
  };
}
