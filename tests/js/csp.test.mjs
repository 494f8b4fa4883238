// The client must run under `Content-Security-Policy: script-src 'self'`: no inline
// scripts, no inline event handlers, no eval. (A browser test cannot serve the page with
// a changed header: Chromium then treats it as non-local and refuses its loopback socket.)
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const WEB = new URL("../../web/", import.meta.url).pathname;

function ourScripts(dir = WEB) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === "vendor") continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...ourScripts(p));
    else if (e.name.endsWith(".js")) out.push(p);
  }
  return out;
}

test("index.html loads every script from a file and has no inline handlers", () => {
  const html = readFileSync(join(WEB, "index.html"), "utf8");
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
  assert.ok(scripts.length >= 3);
  for (const [, attrs, body] of scripts) {
    // Relative (the server may be mounted under a path), never another origin.
    assert.match(attrs, /\bsrc="(?!\/\/|[a-z]+:)[^"]+\.js"/, "every script has a same-origin src");
    assert.equal(body.trim(), "", "no inline script");
  }
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i, "no inline event handler attributes");
  assert.doesNotMatch(html, /javascript:/i);
});

test("our modules neither eval nor build handlers from strings", () => {
  for (const file of ourScripts()) {
    const src = readFileSync(file, "utf8");
    assert.doesNotMatch(src, /\beval\(|new Function\(|setTimeout\(\s*["'`]|setAttribute\(\s*["']on/, file);
  }
});
