// One message element (or a reply being written), Markdown rendered safely.
// window.markdownit comes from vendor/markdown-it.min.js.

import { formatUsage } from "../lib/format.js";
import { formatTime, h } from "./dom.js";

// html: false escapes any HTML in the text; linkify off; images off (no remote pixels).
const md = window.markdownit({ html: false, linkify: false, typographer: false, breaks: true });
md.disable(["image"]);
md.validateLink = (url) => /^(https?:|mailto:)/i.test(String(url).trim());
const renderLinkOpen = md.renderer.rules.link_open
  || ((tokens, idx, options, env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet("target", "_blank");
  tokens[idx].attrSet("rel", "noopener noreferrer nofollow");
  return renderLinkOpen(tokens, idx, options, env, self);
};

export function markdown(text) {
  return md.render(text || "");
}

const STATE_LABELS = {
  streaming: "Writing…",
  cancelled: "Stopped",
  error: "Reply failed",
};

/** Build or refresh the element of a message (or of a streaming reply). */
export function renderMessage(el, msg, { me, streamingText } = {}) {
  const role = msg.role;
  const status = msg.status;
  if (!el) {
    el = h("li.msg", {},
      h("div.msg-head", {}, h("span.msg-author"), h("time.msg-time"), h("span.msg-state")),
      h("div.msg-body"),
      h("div.msg-extra"));
  }
  el.dataset.role = role;
  el.dataset.status = status;
  if (msg.message_id) el.dataset.messageId = msg.message_id;
  if (msg.seq !== undefined && msg.seq !== null && status !== "streaming") el.dataset.seq = String(msg.seq);
  else delete el.dataset.seq;
  const mine = me && msg.author && msg.author.user_id === me;
  el.classList.toggle("mine", Boolean(mine));

  const author = role === "assistant"
    ? `Assistant${msg.model ? ` (${msg.model})` : ""}`
    : (msg.author && msg.author.name) || (role === "system" ? "System" : "Someone");
  el.querySelector(".msg-author").textContent = mine ? `${author} (you)` : author;
  const time = el.querySelector(".msg-time");
  time.textContent = formatTime(msg.created_at);
  if (msg.created_at) time.setAttribute("datetime", msg.created_at);
  el.querySelector(".msg-state").textContent = STATE_LABELS[status] || "";
  el.setAttribute("aria-busy", status === "streaming" ? "true" : "false");

  const body = el.querySelector(".msg-body");
  const text = streamingText !== undefined ? streamingText : msg.content || "";
  if (role === "assistant") {
    body.className = "msg-body markdown";
    body.innerHTML = markdown(text);
  } else {
    body.className = "msg-body plain";
    body.textContent = text;
  }

  const extra = el.querySelector(".msg-extra");
  extra.replaceChildren();
  if (role === "assistant" && status !== "streaming") {
    const sources = msg.sources || [];
    if (sources.length) {
      extra.append(h("details.msg-sources", {},
        h("summary", { text: `Sources (${sources.length})` }),
        h("ol", {}, ...sources.map((s) => h("li", {},
          h("strong", { text: s.filename }),
          h("span.muted", { text: ` · part ${Number(s.chunk_index) + 1}` }),
          h("p", { text: String(s.snippet).slice(0, 400) }))))));
    }
    if (msg.usage) extra.append(h("p.msg-usage", { text: formatUsage(msg.usage) }));
  }
  return el;
}
