// DOM helpers shared by the views: element builder and Markdown.
// window.markdownit comes from vendor/markdown-it.min.js.

function fill(el, classes, props, children) {
  if (classes.length) el.setAttribute("class", classes.join(" "));
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/**
 * Create an element: h("li.msg", {dataset: {...}, text: "..."}, child...). There are no
 * event props: views listen on their containers (data-action), so no inline handlers.
 */
export function h(spec, props = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  return fill(document.createElement(tag), classes, props, children);
}

/** The same for SVG elements (inline charts). */
export function svg(spec, props = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  return fill(document.createElementNS("http://www.w3.org/2000/svg", tag), classes, props, children);
}

export const $ = (id) => document.getElementById(id);

/** Set text only when it differs (keeps screen readers quiet and layout stable). */
export function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

export function show(el, visible) {
  if (el && el.hidden === visible) el.hidden = !visible;
}

export function formatTime(iso) {
  const d = iso ? new Date(iso) : null;
  if (!d || Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}
