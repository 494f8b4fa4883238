// An upload list: one row per file with its phase and progress.

import { h, show } from "./dom.js";

const LABEL = {
  uploading: (pct) => `Uploading ${pct}%`,
  processing: (pct) => `Reading for the assistant ${pct}%`,
  ready: () => "Ready: the assistant can use it",
  stored: () => "Stored (no text to read)",
  failed: () => "Failed",
};

export function renderUploads(list, entries) {
  show(list, entries.length > 0);
  list.replaceChildren(...entries.map((u) => {
    const pct = Math.round(Math.min(1, Math.max(0, u.progress || 0)) * 100);
    const label = u.phase === "failed" ? `Failed: ${u.error}` : LABEL[u.phase](pct);
    const bar = u.phase === "failed" ? h("span") : h("progress", { max: "100", value: String(pct), "aria-label": `${u.name} progress` });
    const tone = u.phase === "failed" ? "failed" : u.phase === "ready" || u.phase === "stored" ? "done" : "working";
    return h("li", { dataset: { phase: u.phase } },
      h("span.file-name", { text: u.name, title: u.name }),
      bar,
      h(`span.upload-state.${tone}`, { text: label }));
  }));
}
