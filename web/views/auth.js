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
    link.textContent = `Continue with ${capitalised(name)}`;
    box.appendChild(link);
  }
  box.hidden = false;
}

const capitalised = (name) => `${name.charAt(0).toUpperCase()}${name.slice(1)}`;

/**
 * A single sign-on whose email has a password account (`/?link=sso`): the form asks for
 * that account's password, which links the two and logs in.
 */
async function showLink(form, err, onSession) {
  let pending;
  try {
    pending = await api.pendingLink();
  } catch {
    history.replaceState(null, "", "/");
    err.textContent = "That sign-in link has expired. Please sign in again.";
    return false;
  }
  $("auth-email").value = pending.email;
  $("auth-email").readOnly = true;
  for (const id of ["auth-name", "auth-name-hint", "signup-btn", "sso"]) $(id).hidden = true;
  form.querySelector('label[for="auth-name"]').hidden = true;
  $("login-btn").textContent = "Link and log in";
  err.textContent = `An account with ${pending.email} already exists. Enter its password to `
    + `link your ${capitalised(pending.provider)} sign-in to it.`;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const password = $("auth-password").value;
    if (!password) { err.textContent = "Please enter the account's password."; return; }
    $("login-btn").disabled = true;
    try {
      const session = await api.confirmLink(password);
      history.replaceState(null, "", "/");
      onSession(session.user);
    } catch (ex) {
      err.textContent = describeError(ex, {
        unauthorized: "That password does not match the account.",
        rate_limited: "Too many attempts. Please wait a minute and try again.",
      }).sentence;
      $("login-btn").disabled = false;
    }
  });
  $("auth-password").focus();
  return true;
}

/** Show the form in `root`; calls onSession(user) once logged in or signed up. */
export function showAuth(root, message, onSession) {
  root.replaceChildren($("tpl-auth").content.cloneNode(true));
  document.title = "Parlour: log in";
  const form = $("auth-form");
  const err = $("auth-error");
  err.textContent = message || "";
  if (new URLSearchParams(location.search).get("link") === "sso") {
    showLink(form, err, onSession).then((linking) => {
      if (!linking) showPasswordForm(form, err, onSession);
    });
    return;
  }
  showPasswordForm(form, err, onSession);
}

function showPasswordForm(form, err, onSession) {
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
