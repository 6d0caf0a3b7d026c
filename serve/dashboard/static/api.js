// REST client (token from POST /api/v1/auth/token) and the /ws/v1/stream client with automatic reconnect.

const SESSION_KEY = "wdp.session";

export class ApiError extends Error {
  constructor(status, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
  }
}

export class Api {
  constructor() {
    this.session = null; // {token, expiresAt, subject, scopes, apiKey?}
    this.onUnauthorized = () => {};
    this.rate = null; // last X-RateLimit-* seen
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
      if (saved && saved.expiresAt * 1000 > Date.now() + 5000) this.session = saved;
    } catch { /* ignore a corrupt entry */ }
  }

  get token() { return this.session ? this.session.token : null; }

  has(scope) {
    const s = this.session ? this.session.scopes : [];
    return s.includes(scope) || s.includes("admin:all");
  }

  async login(body) {
    const r = await fetch("/api/v1/auth/token", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, data.reason || data.detail || r.statusText);
    this.session = {
      token: data.access_token, expiresAt: data.expires_at, scopes: (data.scope || "").split(" ").filter(Boolean),
      subject: body.username || "API key", apiKey: body.grant_type === "api_key" ? body.api_key : null,
    };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
    return this.session;
  }

  logout() {
    this.session = null;
    sessionStorage.removeItem(SESSION_KEY);
  }

  // A token about to expire is renewed from the API key it came from; a password session has to sign in again.
  async ensureFresh() {
    if (!this.session) throw new ApiError(401, "not signed in");
    if (this.session.expiresAt * 1000 - Date.now() > 60_000) return;
    if (this.session.apiKey) {
      await this.login({grant_type: "api_key", api_key: this.session.apiKey});
      return;
    }
    if (this.session.expiresAt * 1000 <= Date.now()) {
      this.logout();
      this.onUnauthorized("session expired: sign in again");
      throw new ApiError(401, "session expired");
    }
  }

  async request(method, path, body) {
    await this.ensureFresh();
    const headers = {Authorization: `Bearer ${this.token}`};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    const remaining = r.headers.get("X-RateLimit-Remaining");
    if (remaining !== null) this.rate = {remaining: +remaining, limit: +r.headers.get("X-RateLimit-Limit")};
    if (r.status === 204) return null;
    const data = await r.json().catch(() => null);
    if (r.status === 401) {
      this.logout();
      this.onUnauthorized((data && data.reason) || "unauthorized");
    }
    if (!r.ok) throw new ApiError(r.status, data && (data.reason || data.detail));
    return data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body) { return this.request("POST", path, body); }
  put(path, body) { return this.request("PUT", path, body); }
  del(path) { return this.request("DELETE", path); }
}

// WebSocket client: subscribes on every (re)connection, reconnects with capped exponential backoff and jitter,
// pings to keep proxies from closing an idle socket. Close codes 4001/4003 mean the credentials are no good:
// no reconnect, the page asks to sign in again.
export class Stream {
  constructor(api, {topics, onMessage, onState}) {
    this.api = api;
    this.topics = topics;
    this.onMessage = onMessage;
    this.onState = onState;
    this.ws = null;
    this.attempt = 0;
    this.stopped = true;
    this.timer = null;
    this.pinger = null;
    this.connections = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
    this.onState("offline");
  }

  async connect() {
    if (this.stopped) return;
    try {
      await this.api.ensureFresh();
    } catch {
      return; // signed out: the page shows the login form
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    // The token goes in the first message, not the URL: URLs end up in access and proxy logs.
    const ws = new WebSocket(`${proto}//${location.host}/ws/v1/stream`);
    const token = this.api.token;
    this.ws = ws;
    this.onState(this.attempt ? "reconnecting" : "connecting");
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.type === "connection") {
        this.attempt = 0;
        this.connections += 1;
        this.onState("open");
        for (const topic of this.topics) ws.send(JSON.stringify({type: "subscribe", topic}));
      }
      this.onMessage(msg);
    };
    ws.onopen = () => {
      ws.send(JSON.stringify({type: "auth", token}));
      clearInterval(this.pinger);
      this.pinger = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({type: "ping", timestamp: Date.now() / 1000}));
      }, 20_000);
    };
    ws.onclose = (ev) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4001 || ev.code === 4003) {
        this.stopped = true;
        this.onState("offline");
        this.api.logout();
        this.api.onUnauthorized(ev.reason || "the stream refused the credentials");
        return;
      }
      const delay = Math.min(10_000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
      this.attempt += 1;
      this.onState("reconnecting", delay);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }
}
