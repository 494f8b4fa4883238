// The Socket.IO connection to /assistant/realtime and ack-based calls over it.
// window.io comes from vendor/socket.io.min.js (loaded by index.html before the modules).

import { ApiError, BASE, getToken } from "./api.js";

/** Connect with the current access token; reconnections pick up the newest one. */
export function connect() {
  return window.io("/assistant/realtime", {
    path: `${BASE}socket.io`,
    auth: (cb) => cb({ token: getToken() }),
    transports: ["websocket", "polling"],
    reconnectionDelayMax: 5000,
    // A connection attempt whose handshake has not finished in 5 s (a half-open network)
    // is dropped and retried, instead of socket.io's default 20 s wait.
    timeout: 5000,
  });
}

/** Emit `event` and wait for its ack: resolves `data`, rejects with an ApiError. */
export async function call(socket, event, payload, { timeout = 15000 } = {}) {
  let reply;
  try {
    reply = await socket.timeout(timeout).emitWithAck(event, payload);
  } catch {
    throw new ApiError("timeout", `no answer to ${event}`);
  }
  if (reply && reply.ok) return reply.data || {};
  const e = (reply && reply.error) || {};
  throw new ApiError(e.code || "internal", e.message);
}

/** `call` retried on timeout (same payload, so a client_msg_id makes it idempotent). */
export async function callWithRetry(socket, event, payload, tries = 3) {
  for (let i = 1; ; i++) {
    try {
      return await call(socket, event, payload);
    } catch (err) {
      if (err.code !== "timeout" || i >= tries) throw err;
    }
  }
}

/** Fire-and-forget for chatty events (typing): dropped while offline, never buffered. */
export function notify(socket, event, payload) {
  if (socket && socket.connected) socket.volatile.emit(event, payload, () => {});
}
