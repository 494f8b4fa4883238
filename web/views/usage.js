// The usage page: questions, latency and time to first token, tokens and cost per day.
// The chart is inline SVG drawn from lib/chart.js: thirty bars need no library, it follows
// the page's colours (dark mode too), and it runs under a strict Content-Security-Policy.

import { bars, dayTokens } from "../lib/chart.js";
import { formatCost, formatMs, formatNumber } from "../lib/format.js";
import { $, h, setText, show, svg } from "./dom.js";

const W = 600;
const H = 140;

export function mount() {}

export function render(s, prev) {
  if (s.route.page !== "usage") return;
  if (prev && prev.route.page === "usage" && s.usage === prev.usage && s.errors === prev.errors) return;
  setText($("usage-error"), s.errors.usage || "");
  const m = s.usage;
  if (!m) return;
  const stat = (label, value) => [h("dt", { text: label }), h("dd", { text: value })];
  const lat = m.latency_ms;
  const ttft = m.time_to_first_token_ms;
  $("usage-stats").replaceChildren(
    ...stat("Questions asked", formatNumber(m.questions)),
    ...stat("Answers", formatNumber(m.answers)),
    ...stat("Reply time (p50 / p95)", `${formatMs(lat.p50)} / ${formatMs(lat.p95)}`),
    ...stat("Time to first token (p50 / p95)", `${formatMs(ttft.p50)} / ${formatMs(ttft.p95)}`),
    ...stat("Tokens in / out", `${formatNumber(m.tokens.input_tokens)} / ${formatNumber(m.tokens.output_tokens)}`),
    ...stat("Cost", formatCost(m.cost_usd)));

  const days = m.daily.map((d) => ({ ...d, tokens: dayTokens(d) }));
  const total = days.reduce((a, d) => a + d.tokens, 0);
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-labelledby": "usage-chart-title usage-chart-desc", preserveAspectRatio: "none" },
    svg("desc", { id: "usage-chart-desc", text: `${formatNumber(total)} tokens over ${days.length} days; the table below lists each day.` }),
    svg("line.axis", { x1: "0", y1: String(H - 0.5), x2: String(W), y2: String(H - 0.5) }),
    ...bars(days, "tokens", { width: W, height: H, gap: 3 }).map((b) => svg("rect.bar", {
      x: String(b.x), y: String(b.y), width: String(b.width), height: String(b.height), dataset: { date: b.label, value: String(b.value) },
    }, svg("title", { text: `${b.label}: ${formatNumber(b.value)} tokens` }))));
  $("usage-chart").replaceChildren(chart);

  const active = days.filter((d) => d.answers > 0).reverse();
  show($("usage-empty"), active.length === 0);
  show($("usage-table"), active.length > 0);
  $("usage-table").tBodies[0].replaceChildren(...active.map((d) => h("tr", {},
    h("th", { scope: "row", text: d.date }), h("td", { text: formatNumber(d.answers) }),
    h("td", { text: formatNumber(d.input_tokens) }), h("td", { text: formatNumber(d.output_tokens) }),
    h("td", { text: formatCost(d.cost_usd) }))));
}
