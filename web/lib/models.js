// Models as GET /api/v1/model lists them: which replies come from a demo model, and the
// notice to show under them (issue 12: the embedded 135M model is for trying Parlour out).

/** The `notice` of `modelId` when the server marks it `demo`, else null. */
export function demoNotice(models, modelId) {
  if (!Array.isArray(models) || typeof modelId !== "string" || !modelId) return null;
  const m = models.find((x) => x && x.id === modelId);
  if (!m || m.demo !== true) return null;
  return typeof m.notice === "string" && m.notice.trim()
    ? m.notice.trim()
    : "This is a small demo model: its answers are often wrong.";
}

/**
 * Text split on `backticks` into [{text, code}] parts, so the view can show the command
 * in the notice as code without rendering any markup from the server. An unmatched
 * backtick stays text.
 */
export function codeSpans(text) {
  const parts = [];
  const s = String(text ?? "");
  let i = 0;
  while (i < s.length) {
    const open = s.indexOf("`", i);
    const close = open < 0 ? -1 : s.indexOf("`", open + 1);
    if (open < 0 || close < 0) {
      parts.push({ text: s.slice(i), code: false });
      break;
    }
    if (open > i) parts.push({ text: s.slice(i, open), code: false });
    if (close > open + 1) parts.push({ text: s.slice(open + 1, close), code: true });
    i = close + 1;
  }
  return parts;
}
