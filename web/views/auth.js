// The log-in / sign-up screen (with single sign-on links when configured).

import * as api from "../api.js";
import { describeError } from "../api.js";
import { $ } from "./dom.js";

// One "Continue with <provider>" link per configured OpenID Connect provider.
async function showSingleSignOn() {
  let names = [];
  try {
    const res = await fetch(`${api.API}/auth/providers`, { credentials: "same-origin" });
    if (res.ok) names = (await res.json()).providers || [];
  } catch { /* the form still works without SSO */ }
  const box = $("sso");
  if (!box || !names.length) return;
  for (const name of names) {
    const link = document.createElement("a");
    link.className = "button";
    link.href = `${api.API}/auth/${encodeURIComponent(name)}/login?next=/`;
    link.textContent = `Continue with ${name.charAt(0).toUpperCase()}${name.slice(1)}`;
    box.appendChild(link);
  }
  box.hidden = false;
}

/** Show the form in `root`; calls onSession(user) once logged in or signed up. */
export function showAuth(root, message, onSession) {
  root.replaceChildren($("tpl-auth").content.cloneNode(true));
  document.title = "Parlour: log in";
  const form = $("auth-form");
  const err = $("auth-error");
  err.textContent = message || "";
  showSingleSignOn();
  let enterFromName = false;
  $("auth-name").addEventListener("keydown", (e) => { enterFromName = e.key === "Enter"; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const action = e.submitter && e.submitter.dataset.action
      ? (enterFromName && e.submitter.id === "login-btn" ? "signup" : e.submitter.dataset.action)
      : "login";
    enterFromName = false;
    const email = $("auth-email").value.trim();
    const password = $("auth-password").value;
    const name = $("auth-name").value.trim();
    if (!email || !password) {
      err.textContent = "Please enter your email and password.";
      (email ? $("auth-password") : $("auth-email")).focus();
      return;
    }
    if (action === "signup" && !name) {
      err.textContent = "Please enter your name to sign up.";
      $("auth-name").focus();
      return;
    }
    err.textContent = action === "signup" ? "Creating your account…" : "Logging in…";
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      const session = action === "signup"
        ? await api.signup(email, password, name)
        : await api.login(email, password);
      onSession(session.user);
    } catch (ex) {
      const { sentence, detail } = describeError(ex, {
        unauthorized: "That email and password do not match an account.",
        conflict: "An account with this email already exists. Try logging in.",
        forbidden: "This email is not allowed to use this server. Ask its administrator.",
        invalid_payload: "Please check the email address, password and name.",
        rate_limited: "Too many attempts. Please wait a minute and try again.",
      });
      err.textContent = detail && ex.code === "invalid_payload" ? `${sentence} (${detail})` : sentence;
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  });
  $("auth-email").focus();
}
