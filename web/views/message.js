// One message element (or a reply being written), Markdown rendered safely.
// window.markdownit comes from vendor/markdown-it.min.js.

import { formatUsage } from "../lib/format.js";
import { codeSpans } from "../lib/models.js";
import { formatArguments, formatResult } from "../lib/tools.js";
import { renderAttachments } from "./attachments.js";
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

const CALL_STATUS = { running: "running…", done: "done", error: "failed" };

/**
 * The reply's tool calls, one <li> per call kept by call_id (so an open <details> stays
 * open while the reply goes on): name, arguments, status, and the result folded.
 */
function renderCalls(el, calls) {
  let list = el.querySelector(":scope > .msg-tools");
  if (!calls || !calls.length) {
    if (list) list.remove();
    return;
  }
  if (!list) {
    list = h("ul.msg-tools", { "aria-label": "Tool calls" });
    el.querySelector(".msg-body").before(list);
  }
  const byId = new Map([...list.children].map((li) => [li.dataset.callId, li]));
  const items = calls.map((c) => {
    const li = byId.get(c.call_id) || h("li.tool-call", { dataset: { callId: c.call_id } },
      h("span.tool-icon", { "aria-hidden": "true" }),
      h("span.tool-name"),
      h("code.tool-args"),
      h("span.tool-status"));
    updateCall(li, c);
    return li;
  });
  const kids = list.children;
  if (kids.length !== items.length || items.some((li, i) => kids[i] !== li)) list.replaceChildren(...items);
}

function updateCall(li, c) {
  li.dataset.status = c.status;
  li.setAttribute("aria-busy", c.status === "running" ? "true" : "false");
  setIfChanged(li.querySelector(".tool-name"), c.name);
  const args = formatArguments(c.arguments);
  setIfChanged(li.querySelector(".tool-args"), args.line);
  setIfChanged(li.querySelector(".tool-status"), CALL_STATUS[c.status] || c.status);
  const hasResult = typeof c.result === "string";
  let details = li.querySelector(":scope > details");
  if (!hasResult && !args.cut) {
    if (details) details.remove();
    return;
  }
  if (!details) {
    details = h("details.tool-result", {}, h("summary"), h("div.tool-detail-args", {}, h("p.tool-label", { text: "Arguments" }), h("pre")),
      h("div.tool-detail-result", {}, h("p.tool-label", { text: "Result" }), h("pre")));
    li.append(details);
  }
  setIfChanged(details.querySelector("summary"), hasResult ? (args.cut ? "Arguments and result" : "Result") : "Arguments");
  const both = hasResult && args.cut; // the inner labels only tell two parts apart
  const argsBox = details.querySelector(".tool-detail-args");
  argsBox.hidden = !args.cut;
  argsBox.querySelector(".tool-label").hidden = !both;
  setIfChanged(argsBox.querySelector("pre"), args.cut ? args.full : "");
  const resultBox = details.querySelector(".tool-detail-result");
  resultBox.hidden = !hasResult;
  resultBox.querySelector(".tool-label").hidden = !both;
  setIfChanged(resultBox.querySelector("pre"), hasResult ? formatResult(c.result) : "");
}

function setIfChanged(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/** The demo model's notice: one line, its command shown as code (never as markup). */
function demoNote(text) {
  return h("p.msg-notice", { role: "note" },
    ...codeSpans(text).map((p) => (p.code ? h("code", { text: p.text }) : p.text)));
}

/**
 * Build or refresh the element of a message (or of a streaming reply). `calls`: its tool
 * calls (live or stored); `notice`: the demo-model notice for a finished reply.
 */
export function renderMessage(el, msg, { me, streamingText, calls = [], notice = null, files = null } = {}) {
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
  renderCalls(el, role === "assistant" ? calls : []);
  renderAttachments(el, msg, files);

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
    if (notice) extra.append(demoNote(notice));
  }
  return el;
}
