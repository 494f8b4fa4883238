// The API keys page: create a key (shown once, with a copy button), list and revoke keys.

import { expiry, keyList, lastUsed, usageLine } from "../lib/apikeys.js";
import { confirmDialog } from "./confirm.js";
import { $, h, setText, show } from "./dom.js";

export function mount({ store, actions }) {
  setText($("keys-base-url"), `${location.origin}/v1`);
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("key-name").value.trim();
    if (!name) return;
    const days = Number($("key-days").value) || null;
    actions.createKey(name, days).then((ok) => { if (ok) $("key-name").value = ""; });
  });
  $("key-copy").addEventListener("click", async () => {
    const shown = store.get().newKey;
    if (!shown) return;
    try {
      await navigator.clipboard.writeText(shown.key);
      setText($("key-copy-status"), "Copied.");
    } catch {
      // No clipboard permission (plain http, old browser): select it for Ctrl+C instead.
      getSelection().selectAllChildren($("key-new-value"));
      setText($("key-copy-status"), "Selected: press Ctrl+C (⌘C) to copy.");
    }
  });
  $("key-done").addEventListener("click", () => actions.dismissKey());
  $("keys-list").addEventListener("click", async (e) => {
    const btn = e.target.closest("button[data-action='revoke-key']");
    if (!btn) return;
    const key = (store.get().apiKeys || {})[btn.dataset.target];
    if (key && await confirmDialog({ title: `Revoke “${key.name}”?`, text: "Programs using this key stop working at once.", ok: "Revoke" })) {
      actions.revokeKey(key.id);
    }
  });
}

export function render(s, prev) {
  if (s.route.page !== "keys") return;
  if (prev && prev.route.page === "keys" && s.apiKeys === prev.apiKeys && s.newKey === prev.newKey
      && s.errors === prev.errors && s.busy === prev.busy) return;
  setText($("keys-error"), s.errors.keys || s.errors["key-create"] || "");
  $("key-create").disabled = Boolean(s.busy["key-create"]);
  const shown = s.newKey;
  show($("key-new"), Boolean(shown));
  if (!prev || shown !== prev.newKey) {
    setText($("key-new-name"), shown ? shown.name : "");
    setText($("key-new-value"), shown ? shown.key : "");
    setText($("key-copy-status"), "");
  }
  const keys = keyList(s);
  show($("keys-empty"), s.apiKeys !== undefined && s.apiKeys !== null && keys.length === 0);
  const now = Date.now();
  $("keys-list").replaceChildren(...keys.map((k) => h("li.item", { dataset: { keyId: k.id } },
    h("span.item-name", { text: k.name }),
    h("code.key-prefix", { text: `${k.prefix}…` }),
    h("span.muted", { text: `${lastUsed(k, now)} · ${expiry(k, now)} · ${usageLine(k)}` }),
    h("span.item-actions", {},
      h("button", { type: "button", id: `revoke-key-${k.id}`, dataset: { action: "revoke-key", target: k.id }, "aria-label": `Revoke ${k.name}`, disabled: s.busy[`key:${k.id}`], text: "Revoke" })),
    h("p.field-error", { role: "alert", text: s.errors[`key:${k.id}`] || "" }))));
}
