// A confirmation in the page's own <dialog> (focus moves in and back; Escape cancels).

import { $ } from "./dom.js";

/** Ask; resolves true when the user presses the confirm button. */
export function confirmDialog({ title, text, ok }) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}
