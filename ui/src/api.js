// Talking to the daemon: JSON fetches and the live SSE stream, with the
// optional API token (`bwtracker run --auth-token`). Paths are relative so
// the dashboard also works behind a reverse proxy under a sub-path.

const TOKEN_KEY = "bwtracker.token";

export class HTTPError extends Error {
  constructor(status, msg) {
    super(msg);
    this.status = status;
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(t) {
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* private mode: the token lasts for this page only */
  }
  memToken = t;
}

let memToken = "";

// A link like http://host:8080/#token=XYZ hands the token over once; it is
// then kept in localStorage and removed from the address bar.
// The rest of the fragment (the view's state, urlstate.js) stays.
export function tokenFromHash() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ""));
  const t = p.get("token");
  if (t) {
    setToken(t);
    p.delete("token");
    const rest = p.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
}

function token() {
  return memToken || getToken();
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  }
  const s = u.toString();
  return s ? "?" + s : "";
}

// getJSON fetches api/<path>; it throws HTTPError (status 0 when the daemon
// cannot be reached) with the server's error message.
export async function getJSON(path, params = {}, signal) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = "Bearer " + t;
  let resp;
  try {
    resp = await fetch("api/" + path + qs(params), { headers, signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new HTTPError(0, "cannot reach the bwtracker daemon");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  if (!resp.ok) {
    throw new HTTPError(resp.status, (body && body.error) || `HTTP ${resp.status}`);
  }
  return body;
}

// LiveStream keeps one EventSource open, reconnecting with backoff when it
// drops, and notices a stream that stays silent. Callbacks: onSnapshot(body),
// onState("live" | "connecting" | "down" | "auth", message).
export class LiveStream {
  constructor({ onSnapshot, onState }) {
    this.onSnapshot = onSnapshot;
    this.onState = onState;
    this.es = null;
    this.backoff = 1000;
    this.timer = 0;
    this.watchdog = 0;
    this.lastEvent = 0;
    this.silentMs = 10000;
  }

  start() {
    this.stop();
    const t = token();
    const es = new EventSource("api/stream" + qs({ token: t }));
    this.es = es;
    es.addEventListener("snapshot", (ev) => {
      this.lastEvent = Date.now();
      this.backoff = 1000;
      let body;
      try {
        body = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (body && body.interval_ms) this.silentMs = Math.max(10000, body.interval_ms * 5);
      this.onState("live", "");
      this.onSnapshot(body);
    });
    es.addEventListener("end", () => this.dropped("the daemon is stopping"));
    es.onopen = () => {
      this.lastEvent = Date.now();
    };
    es.onerror = () => this.dropped("");
    this.lastEvent = Date.now();
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastEvent > this.silentMs) this.dropped("no data from the daemon for " + Math.round((Date.now() - this.lastEvent) / 1000) + " s");
    }, 2000);
  }

  stop() {
    if (this.es) {
      this.es.onerror = null;
      this.es.close();
      this.es = null;
    }
    clearInterval(this.watchdog);
    clearTimeout(this.timer);
  }

  // dropped closes the stream, works out why (daemon down, token, ...) and
  // schedules a reconnect.
  async dropped(why) {
    if (!this.es) return;
    this.stop();
    this.onState("connecting", why || "live stream lost");
    let state = "down";
    let msg = "cannot reach the bwtracker daemon";
    try {
      await getJSON("status");
      state = "connecting";
      msg = why || "live stream dropped";
    } catch (e) {
      if (e.status === 401) {
        state = "auth";
        msg = e.message;
      } else if (e.status) {
        msg = e.message;
      }
    }
    this.onState(state, msg, this.backoff);
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 10000);
    if (state !== "auth") this.timer = setTimeout(() => this.start(), wait);
  }
}
