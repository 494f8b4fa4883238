// Numbers and times for people.

export function formatCost(usd) {
  const n = Number(usd);
  if (!Number.isFinite(n)) return "";
  if (n === 0) return "$0";
  if (n < 0.01) return `$${n.toPrecision(2)}`;
  return `$${n.toFixed(n < 1 ? 3 : 2)}`;
}

const num = (n) => Number(n || 0).toLocaleString("en");

/** "120 in · 56 out · 100 cached tokens · $0.00041" */
export function formatUsage(usage) {
  if (!usage) return "";
  const parts = [`${num(usage.input_tokens)} in`, `${num(usage.output_tokens)} out`];
  if (usage.cached_tokens) parts.push(`${num(usage.cached_tokens)} cached`);
  let text = `${parts.join(" · ")} tokens`;
  if (usage.cost_usd !== undefined && usage.cost_usd !== null) text += ` · ${formatCost(usage.cost_usd)}`;
  return text;
}

export function formatBytes(n) {
  const b = Number(n) || 0;
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KB`;
  return `${(b / 1024 / 1024).toFixed(1)} MB`;
}

/** "1.2 s" / "340 ms" / "–" */
export function formatMs(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return "–";
  const n = Number(ms);
  return n >= 1000 ? `${(n / 1000).toFixed(1)} s` : `${Math.round(n)} ms`;
}

export { num as formatNumber };
