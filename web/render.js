// Message elements, Markdown and small formatting helpers.
// window.markdownit comes from vendor/markdown-it.min.js.

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

/** Create an element: h("li.msg", {dataset: {...}, text: "..."}, child...). */
export function h(spec, props = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag);
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function formatTime(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function formatCost(usd) {
  const n = Number(usd);
  if (!Number.isFinite(n)) return "";
  if (n === 0) return "$0";
  if (n < 0.01) return `$${n.toPrecision(2)}`;
  return `$${n.toFixed(n < 1 ? 3 : 2)}`;
}

const num = (n) => Number(n || 0).toLocaleString();

/** "120 in · 56 out · 100 cached tokens · $0.00041" */
export function formatUsage(usage) {
  if (!usage) return "";
  const parts = [`${num(usage.input_tokens)} in`, `${num(usage.output_tokens)} out`];
  if (usage.cached_tokens) parts.push(`${num(usage.cached_tokens)} cached`);
  let text = `${parts.join(" · ")} tokens`;
  if (usage.cost_usd !== undefined && usage.cost_usd !== null) text += ` · ${formatCost(usage.cost_usd)}`;
  return text;
}

const STATE_LABELS = {
  streaming: "Writing…",
  cancelled: "Stopped",
  error: "Reply failed",
};

/** Build or refresh the element of a message (or of a streaming reply). */
export function renderMessage(el, msg, { me, streamingText } = {}) {
  const role = msg.role || "assistant";
  const status = msg.status || "complete";
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
    const sources = Array.isArray(msg.sources) ? msg.sources : [];
    if (sources.length) {
      extra.append(h("details.msg-sources", {},
        h("summary", { text: `Sources (${sources.length})` }),
        h("ol", {}, ...sources.map((s) => h("li", {},
          h("strong", { text: `${s.filename || s.document_id || "document"}` }),
          h("span.muted", { text: s.chunk_index !== undefined ? ` · part ${Number(s.chunk_index) + 1}` : "" }),
          h("p", { text: String(s.snippet || "").slice(0, 400) }))))));
    }
    if (msg.usage) extra.append(h("p.msg-usage", { text: formatUsage(msg.usage) }));
  }
  return el;
}
