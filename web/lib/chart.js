// Geometry of the usage chart (bars per day), as plain numbers; views/usage.js draws it
// as inline SVG. No DOM here.

/**
 * Bars for a daily series: [{x, y, width, height, label, value}] in a width×height box,
 * with `pad` px at the bottom for the axis. Zero days get no height; the tallest fills it.
 */
export function bars(series, key, { width = 600, height = 140, gap = 2, pad = 0 } = {}) {
  const n = series.length;
  if (!n) return [];
  const max = Math.max(0, ...series.map((d) => Number(d[key]) || 0));
  const slot = width / n;
  const w = Math.max(1, slot - gap);
  const room = height - pad;
  return series.map((d, i) => {
    const value = Number(d[key]) || 0;
    const h = max > 0 ? Math.round((value / max) * room * 10) / 10 : 0;
    return { x: Math.round(i * slot * 10) / 10, y: Math.round((room - h) * 10) / 10, width: Math.round(w * 10) / 10, height: h, label: d.date, value };
  });
}

/** Total tokens of a day (input + output). */
export const dayTokens = (d) => (Number(d.input_tokens) || 0) + (Number(d.output_tokens) || 0);
