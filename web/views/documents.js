// The documents page: the user's knowledge base (upload with progress, status, download, delete).

import { documentUrl } from "../api.js";
import { formatBytes } from "../lib/format.js";
import { confirmDialog } from "./confirm.js";
import { $, h, setText, show } from "./dom.js";
import { renderUploads } from "./uploads.js";

const STATUS = { processing: "Reading", ready: "Ready", stored: "Stored", failed: "Failed" };

export function mount({ store, actions }) {
  $("documents-upload-btn").addEventListener("click", () => $("documents-input").click());
  $("documents-input").addEventListener("change", (e) => {
    const files = Array.from(e.target.files || []);
    e.target.value = "";
    if (files.length) actions.upload({ scope: "documents" }, files);
  });
  $("documents-list").addEventListener("click", async (e) => {
    const btn = e.target.closest("button[data-action='delete-document']");
    if (!btn) return;
    const doc = (store.get().documents || {})[btn.dataset.target];
    if (doc && await confirmDialog({ title: `Delete “${doc.filename}”?`, text: "The assistant will no longer read it in your rooms.", ok: "Delete" })) {
      actions.deleteDocument(doc.document_id);
    }
  });
}

export function render(s, prev) {
  if (s.route.page !== "documents") return;
  if (prev && prev.route.page === "documents" && s.documents === prev.documents && s.uploads === prev.uploads
      && s.errors === prev.errors && s.busy === prev.busy) return;
  renderUploads($("documents-uploads"), s.uploads.filter((u) => u.scope === "documents" && u.phase !== "ready"));
  setText($("documents-error"), s.errors["upload:documents"] || s.errors.documents || "");
  const docs = Object.values(s.documents || {}).sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  show($("documents-empty"), s.documents !== null && docs.length === 0);
  const list = $("documents-list");
  const active = document.activeElement && list.contains(document.activeElement) ? document.activeElement.id : null;
  list.replaceChildren(...docs.map((d) => {
    const pct = Math.round((Number(d.progress) || 0) * 100);
    const status = d.status === "processing" ? `${STATUS.processing} ${pct}%` : STATUS[d.status] || d.status;
    return h("li.item", { dataset: { documentId: d.document_id, status: d.status } },
      h("span.item-name", { text: d.filename }),
      d.status === "processing" ? h("progress", { max: "100", value: String(pct), "aria-label": `${d.filename} progress` }) : null,
      h("span.muted.doc-status", { text: `${formatBytes(d.size)} · ${status}${d.status === "failed" && d.error ? `: ${d.error}` : ""}` }),
      h("span.item-actions", {},
        h("a.button", { href: documentUrl(d.document_id), download: d.filename, "aria-label": `Download ${d.filename}`, text: "Download" }),
        h("button", { type: "button", id: `del-doc-${d.document_id}`, dataset: { action: "delete-document", target: d.document_id }, "aria-label": `Delete ${d.filename}`, disabled: s.busy[`document:${d.document_id}`], text: "Delete" })),
      h("p.field-error", { role: "alert", text: s.errors[`document:${d.document_id}`] || "" }));
  }));
  if (active && document.getElementById(active)) document.getElementById(active).focus();
}
