// REST calls under /api/v1, the access token, and turning error codes into sentences.

// The server may be mounted under a path (server.base_path): every URL is relative to
// where this file was served from ("/" or e.g. "/parlour/").
export const BASE = new URL("./", import.meta.url).pathname;
export const API = `${BASE}api/v1`;

// Plain-language sentences for every error code of SPEC §3 (and a few of our own).
const SENTENCES = {
  invalid_payload: "That request was not valid. Please check what you entered.",
  unauthorized: "You are not signed in, or your session has ended. Please log in again.",
  forbidden: "You do not have permission to do that.",
  not_found: "That room or item does not exist, or you do not have access to it.",
  conflict: "That clashes with something that already exists.",
  rate_limited: "You are going a bit fast. Please wait a moment and try again.",
  payload_too_large: "That is too large. Please send something smaller.",
  unavailable: "The service is busy or temporarily unavailable. Please try again shortly.",
  provider_error: "The assistant's model provider returned an error. Try again, or pick another model.",
  internal: "Something went wrong on the server. Please try again.",
  network: "Cannot reach the server. Check your connection; we will keep trying.",
  timeout: "The server took too long to answer. Please try again.",
};

/** An error with a code from SPEC §3 and the server's own message. */
export class ApiError extends Error {
  constructor(code, message, status = 0) {
    super(message || code);
    this.code = code || "internal";
    this.status = status;
  }
}

/**
 * The server's own sentence for a refused action ("The room is full."), or the code's
 * sentence when the server gave none (network errors, timeouts).
 */
export function serverSentence(err) {
  const code = (err && err.code) || "internal";
  const msg = err && typeof err.message === "string" ? err.message.trim() : "";
  if (!msg || msg === code || code === "network" || code === "timeout" || code === "internal" || /^HTTP \d+$/.test(msg)) {
    return SENTENCES[code] || SENTENCES.internal;
  }
  // "the room is full" → "The room is full."; a name first ("notes.txt: ...") stays as it is.
  const first = msg.split(/[\s:]/, 1)[0];
  const text = /^[a-z]+$/.test(first) ? msg.charAt(0).toUpperCase() + msg.slice(1) : msg;
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

/** A sentence for a person, from an ApiError, an ack error `{code, message}` or anything thrown. */
export function describeError(err, overrides = {}) {
  const code = (err && err.code) || "internal";
  const sentence = overrides[code] || SENTENCES[code] || SENTENCES.internal;
  const detail = err && err.message && err.message !== code ? String(err.message) : "";
  return { code, sentence, detail };
}

const STATUS_CODES = {
  400: "invalid_payload", 401: "unauthorized", 403: "forbidden", 404: "not_found",
  409: "conflict", 413: "payload_too_large", 422: "invalid_payload", 429: "rate_limited",
  503: "unavailable",
};

function errorFromResponse(status, body) {
  const e = body && body.error;
  if (e && typeof e === "object") return new ApiError(e.code || STATUS_CODES[status] || "internal", e.message, status);
  return new ApiError(STATUS_CODES[status] || "internal", `HTTP ${status}`, status);
}

// ---- session -----------------------------------------------------------------------

let accessToken = null;
let refreshTimer = null;
let refreshInFlight = null;
const listeners = { token: [], expired: [] };

/** Subscribe to "token" (a new access token, after refresh) or "expired" (refresh failed). */
export function on(event, fn) { listeners[event].push(fn); }
function fire(event, arg) { for (const fn of listeners[event]) fn(arg); }

export function getToken() { return accessToken; }

function adopt(session) {
  accessToken = session.access_token;
  clearTimeout(refreshTimer);
  const ttl = Number(session.expires_in) || 900;
  // Refresh ahead of expiry: a minute early, or at 80% of short lifetimes.
  const ahead = Math.min(60, ttl * 0.2);
  const attempt = () => refresh().catch((err) => {
    if (err.code === "unauthorized") fire("expired", err);
    else refreshTimer = setTimeout(attempt, 10_000); // offline or server busy: try again
  });
  refreshTimer = setTimeout(attempt, Math.max(5, ttl - ahead) * 1000);
  return session;
}

export function forget() {
  accessToken = null;
  clearTimeout(refreshTimer);
  refreshTimer = null;
}

async function doRefresh() {
  let res;
  try {
    res = await fetch(`${API}/auth/refresh`, { method: "POST", credentials: "include" });
  } catch {
    throw new ApiError("network", "network error");
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw errorFromResponse(res.status, body);
  adopt(body);
  fire("token", body.access_token);
  return body;
}

/**
 * Trade the HttpOnly refresh cookie for a new access token. One at a time, across tabs
 * too (refresh tokens rotate: two tabs spending the same one would end the session).
 */
export function refresh() {
  if (!refreshInFlight) {
    const run = navigator.locks
      ? navigator.locks.request("parlour-auth-refresh", doRefresh)
      : doRefresh();
    refreshInFlight = run.finally(() => { refreshInFlight = null; });
  }
  return refreshInFlight;
}

// ---- requests ----------------------------------------------------------------------

/** JSON request with the Bearer token; on 401 refreshes once and retries. */
export async function request(method, path, body, { auth = true, retry = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && accessToken) headers.Authorization = `Bearer ${accessToken}`;
  let res;
  try {
    res = await fetch(API + path, {
      method, headers, credentials: "include",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("network", "network error");
  }
  if (res.status === 401 && auth && retry) {
    await refresh();
    return request(method, path, body, { auth, retry: false });
  }
  if (res.status === 204) return {};
  const data = await res.json().catch(() => null);
  if (!res.ok) throw errorFromResponse(res.status, data);
  return data || {};
}

export async function signup(email, password, name) {
  return adopt(await request("POST", "/auth/signup", { email, password, name }, { auth: false }));
}

export async function login(email, password) {
  return adopt(await request("POST", "/auth/login", { email, password }, { auth: false }));
}

/** The single sign-on link waiting for its account's password: {email, provider}. */
export function pendingLink() {
  return request("GET", "/auth/link", undefined, { auth: false });
}

/** Link the waiting single sign-on to the account whose password this is; logs in. */
export async function confirmLink(password) {
  return adopt(await request("POST", "/auth/link", { password }, { auth: false }));
}

export async function logout() {
  try {
    await request("POST", "/auth/logout", undefined, { auth: false });
  } finally {
    forget();
  }
}

const enc = encodeURIComponent;

export async function listRooms() {
  return (await request("GET", "/chat?limit=100")).chats;
}

/** A page of public rooms: {chats, next_cursor}. */
export function listPublicRooms(cursor = null) {
  return request("GET", `/chat/public?limit=50${cursor ? `&cursor=${enc(cursor)}` : ""}`);
}

/** The model catalogue; an empty list when it cannot be read (the picker then shows the room's model). */
export async function listModels() {
  try {
    return (await request("GET", "/model?page=1&page_size=100")).models;
  } catch {
    return [];
  }
}

export async function listDocuments() {
  return (await request("GET", "/documents")).documents;
}

export function getDocument(id) {
  return request("GET", `/documents/${enc(id)}`);
}

export function deleteDocument(id) {
  return request("DELETE", `/documents/${enc(id)}`);
}

export const documentUrl = (id) => `${API}/documents/${enc(id)}/content`;

export async function listFiles(chatId) {
  return (await request("GET", `/chat/${enc(chatId)}/files`)).files;
}

export function deleteFile(chatId, fileId) {
  return request("DELETE", `/chat/${enc(chatId)}/files/${enc(fileId)}`);
}

export const fileUrl = (chatId, fileId) => `${API}/chat/${enc(chatId)}/files/${enc(fileId)}`;

export function deleteRoom(chatId) {
  return request("DELETE", `/chat/${enc(chatId)}`);
}

export function metrics(days = 30) {
  return request("GET", `/metrics?days=${days}`);
}

/**
 * Upload files (multipart field `files`) to a chat (`{scope: "room", room_id}`) or to the
 * documents (`{scope: "documents"}`). XHR, for upload progress: onProgress(fraction 0..1).
 * Resolves with the server's records.
 */
export function upload(target, files, onProgress, retry = true) {
  const room = target.scope === "room";
  const path = room ? `/chat/${enc(target.room_id)}/upload` : "/documents";
  const key = room ? "files" : "documents";
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API + path);
    xhr.withCredentials = true;
    if (accessToken) xhr.setRequestHeader("Authorization", `Bearer ${accessToken}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onerror = () => reject(new ApiError("network", "network error"));
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 401 && retry) {
        refresh().then(() => upload(target, files, onProgress, false)).then(resolve, reject);
      } else if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body[key]);
      } else {
        reject(errorFromResponse(xhr.status, body));
      }
    };
    xhr.send(form);
  });
}

/**
 * Ask aloud: a recorded question to /run/audio in a chat; the spoken answer as a Blob
 * (the question and the answer also arrive in the chat as messages).
 */
export async function runAudio(chatId, recording) {
  const form = new FormData();
  form.append("chat_id", chatId);
  form.append("files", recording, "question.webm");
  let res;
  try {
    res = await fetch(`${API}/run/audio?format=wav`, {
      method: "POST", body: form, credentials: "include",
      headers: accessToken ? { Authorization: `Bearer ${accessToken}` } : {},
    });
  } catch {
    throw new ApiError("network", "network error");
  }
  if (!res.ok) throw errorFromResponse(res.status, await res.json().catch(() => null));
  return res.blob();
}
