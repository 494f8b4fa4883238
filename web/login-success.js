// After single sign-on: trade the one-time token in the URL for the session cookies
// (GET api/v1/auth/validate-token?token=), then go where the log-in started.

const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const next = params.get("next") || "";
// Nobody keeps the token: not the history, not a bookmark, not a Referer.
history.replaceState(null, "", location.pathname);

/** A path on this site (never another origin: `next` comes from the URL). */
function localPath(path) {
  return path.startsWith("/") && !path.startsWith("//") && !path.includes("\\") ? path : "./";
}

async function signIn() {
  const status = document.getElementById("status");
  try {
    const url = new URL("api/v1/auth/validate-token", document.baseURI);
    url.searchParams.set("token", token);
    const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (res.ok) {
      location.replace(localPath(next));
      return;
    }
    const body = await res.json().catch(() => ({}));
    status.textContent = (body.error && body.error.message) || "Signing in failed.";
  } catch {
    status.textContent = "Cannot reach the server. Check your connection and try again.";
  }
  document.getElementById("again").hidden = false;
}

signIn();
