// The dashboard: sign-in, the live stream (skeletons, floor, events, sensing), periodic status, the zone editor.
// State lives in `state`; window.wdp exposes it (and the views) for debugging and the end-to-end test.

import {Api, Stream} from "./api.js";
import {SensingPanel, WINDOW_S as SENSING_WINDOW_S} from "./sensing.js";
import {trackColor} from "./skeleton.js";
import {FloorView, PoseView} from "./views.js";
import {ZoneEditor} from "./zones.js";

const $ = (id) => document.getElementById(id);
const STATUS_EVERY_MS = 10_000; // REST polling stays well inside the authenticated tier's hourly budget
const FEED_MAX = 200;
const SIMULATED = new Set(["simulator", "replay"]);
const SENSING_HISTORY_MAX = 5000; // states fetched at start (the newest): 5 min of 16 routers and zones
const HISTORY_PAGE = 1000; // the API's largest page

const state = {
  frame: null, frames: 0, dense: null, denseFrames: 0, frameTimes: [], events: [], zones: [], status: null, routers: [],
  dropped: 0, conn: "offline", seenEvents: new Set(),
};
const api = new Api();
const poseView = new PoseView($("pose-canvas"));
const floorView = new FloorView($("floor-canvas"));
const sensingPanel = new SensingPanel($("sensing-list"), {
  zoneName: (id) => (state.zones.find((z) => z.id === id) || {}).name,
});
let stream = null;
let statusTimer = null;
let loginMode = "password";

const editor = new ZoneEditor({
  api, floor: floorView, onChange: () => loadZones(),
  el: {
    form: $("zone-form"), name: $("zone-name"), id: $("zone-id"), max: $("zone-max"), restricted: $("zone-restricted"),
    save: $("zone-save"), del: $("zone-delete"), cancel: $("zone-cancel"), error: $("zone-error"), hint: $("zone-hint"),
    select: $("zone-select"), create: $("zone-new"),
  },
});

window.wdp = {state, api, poseView, floorView, sensingPanel, editor, get stream() { return stream; }};

// ------------------------------------------------------------------------------------------------ sign-in
function showLogin(message = "") {
  stopLive();
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
}

api.onUnauthorized = (reason) => showLogin(reason);

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => {
    loginMode = tab.dataset.mode;
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
    document.querySelector(".mode-password").hidden = loginMode !== "password";
    document.querySelector(".mode-api_key").hidden = loginMode !== "api_key";
  });
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const body = loginMode === "password"
    ? {grant_type: "password", username: $("login-username").value.trim(), password: $("login-password").value}
    : {grant_type: "api_key", api_key: $("login-apikey").value.trim()};
  try {
    $("login-submit").disabled = true;
    await api.login(body);
    $("login-password").value = "";
    startLive();
  } catch (e) {
    $("login-error").textContent = `sign-in failed: ${e.message}`;
  } finally {
    $("login-submit").disabled = false;
  }
});

$("logout").addEventListener("click", () => { api.logout(); showLogin(""); });

// ------------------------------------------------------------------------------------------------ live
function startLive() {
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${api.session.subject} · ${api.session.scopes.join(" ")}`;
  stream = new Stream(api, {
    // sensing_events: a router's motion/presence/breathing events (a zone's also come on zone_events)
    // dense_poses: the persons' body parts (DensePose), painted under the skeletons; none when the server's
    // engine.dense is off
    topics: ["pose_updates", "dense_poses", "system_alerts", "zone_events", "sensing_updates", "sensing_events"],
    onMessage: onStreamMessage,
    onState: (s, delay) => {
      state.conn = s;
      const el = $("conn-state");
      el.dataset.state = s;
      el.textContent = s === "reconnecting" && delay ? `reconnecting in ${(delay / 1000).toFixed(1)} s` : s;
    },
  });
  stream.start();
  loadZones();
  loadHeatmap();
  loadSensingHistory();
  pollStatus();
  statusTimer = setInterval(pollStatus, STATUS_EVERY_MS);
  setMjpeg($("show-mjpeg").checked);
}

function stopLive() {
  if (stream) stream.stop();
  stream = null;
  clearInterval(statusTimer);
  setMjpeg(false);
}

function onStreamMessage(msg) {
  switch (msg.type) {
    case "pose_update": onFrame(msg.frame); break;
    case "dense_pose_update": state.dense = msg.frame; state.denseFrames += 1; break;
    case "event": onEvent(msg.event); break;
    case "sensing_update": sensingPanel.add(msg.state); break;
    case "dropped": state.dropped = msg.total; break;
    case "error": console.warn("stream error:", msg.reason); break;
    default: break;
  }
}

function onFrame(frame) {
  state.frame = frame;
  state.frames += 1;
  const now = performance.now();
  state.frameTimes.push(now);
  while (state.frameTimes.length && now - state.frameTimes[0] > 3000) state.frameTimes.shift();
  floorView.addFrame(frame);
  showSource(frame.source);
}

function showSource(source) {
  $("source-badge").hidden = !SIMULATED.has(source);
  $("source-badge").textContent = source === "replay" ? "SIMULATED SOURCE · replay" : "SIMULATED SOURCE";
  $("source-live").hidden = source !== "live";
}

function describe(ev) {
  const bits = [];
  if (ev.track_id !== undefined && ev.track_id !== null) bits.push(`person #${ev.track_id}`);
  if (ev.detector === "model") bits.push("CSI model");  // activity/fall from the model on a router's stream
  if (ev.zone_id) bits.push(`zone ${ev.zone_id}`);
  if (ev.activity) bits.push(ev.activity);
  if (ev.router_id) bits.push(`router ${ev.router_id}`);
  if (ev.current_occupancy !== undefined) bits.push(`${ev.current_occupancy}/${ev.max_occupancy} people`);
  if (ev.confidence !== undefined) bits.push(`conf ${ev.confidence.toFixed(2)}`);
  if (ev.severity) bits.push(ev.severity);
  if (ev.message) bits.push(ev.message);
  if (ev.reason) bits.push(ev.reason);
  if (ev.metric) bits.push(`${ev.metric} ${(+ev.value).toFixed(2)}`);
  if (ev.motion_score !== undefined) bits.push(`score ${ev.motion_score.toFixed(1)}`);
  if (ev.type === "motion.stopped") bits.push(`after ${ev.duration_s.toFixed(0)} s`);
  if (ev.presence !== undefined) bits.push(ev.presence ? (ev.still ? "present, still" : "present") : "nobody");
  if (ev.type === "breathing.updated") {
    bits.push(ev.breathing_bpm === null ? "no breathing detected" : `${ev.breathing_bpm.toFixed(1)} breaths/min`);
  }
  return bits.join(" · ");
}

function onEvent(ev) {
  // a zone's sensing event comes on two subscribed topics (zone_events and sensing_events): show it once
  if (state.seenEvents.has(ev.event_id)) return;
  state.seenEvents.add(ev.event_id);
  if (state.seenEvents.size > 4 * FEED_MAX) state.seenEvents.delete(state.seenEvents.values().next().value);
  state.events.push(ev);
  if (state.events.length > FEED_MAX) state.events.shift();
  const li = document.createElement("li");
  const type = ev.type;
  li.className = "event";
  li.dataset.type = type;
  if (type === "person.fall_detected") li.classList.add("fall");
  else if (type.startsWith("alert.")) li.classList.add("alert");
  if (ev.severity) li.classList.add(`sev-${ev.severity}`);
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = new Date(ev.timestamp * 1000).toLocaleTimeString();
  const k = document.createElement("span");
  k.textContent = type === "person.fall_detected" ? "⚠ FALL DETECTED" : type;
  const d = document.createElement("span");
  d.textContent = describe(ev);
  li.append(t, k, d);
  const feed = $("event-feed");
  feed.prepend(li);
  while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  $("event-count").textContent = String(state.events.length);
  if (type === "router.connected" || type === "router.disconnected") {
    const r = state.routers.find((q) => q.id === ev.router_id);
    if (r) { r.status = type === "router.connected" ? "connected" : "disconnected"; renderRouters(); }
  }
}

// ------------------------------------------------------------------------------------------------ REST
async function loadZones() {
  try {
    state.zones = await api.get("/api/v1/config/zones");
  } catch (e) {
    state.zones = [];
    $("zone-error").textContent = e.status === 403 ? "zones need system:read or zone:write" : `zones: ${e.message}`;
  }
  for (const z of state.zones) for (const [x, y] of z.polygon) floorView.include(x, y);
  editor.setZones(state.zones);
  const canEdit = api.has("zone:write") || api.has("config:write");
  $("zone-new").disabled = !canEdit;
  $("zone-select").disabled = !canEdit;
}

async function loadHeatmap() {
  if (!api.has("analytics:read")) return;
  const g = FloorView.heatGrid;
  const end = Date.now() / 1000, start = end - 15 * 60;
  try {
    const h = await api.get(`/api/v1/analytics/heatmaps?start_time=${start}&end_time=${end}&x0=${g.x0}&y0=${g.y0}` +
      `&cell_m=${g.cell}&nx=${g.nx}&ny=${g.ny}`);
    floorView.seedHeat(h);
  } catch (e) {
    console.warn("heatmap history unavailable:", e.message);
  }
}

// The last minutes of sensing states (oldest first from the API: read the newest pages), merged with what the
// stream has delivered meanwhile.
async function loadSensingHistory() {
  const end = Date.now() / 1000 + 60, start = end - 60 - SENSING_WINDOW_S;
  const query = `/api/v1/sensing/history?start_time=${start}&end_time=${end}`;
  try {
    const {total} = await api.get(`${query}&limit=1`);
    const states = [];
    for (let skip = Math.max(0, total - SENSING_HISTORY_MAX); skip < total; skip += HISTORY_PAGE) {
      const page = await api.get(`${query}&limit=${HISTORY_PAGE}&skip=${skip}`);
      states.push(...page.states);
      if (page.states.length < HISTORY_PAGE) break;
    }
    sensingPanel.seed(states);
  } catch (e) {
    console.warn("sensing history unavailable:", e.message);
  }
}

async function pollStatus() {
  if (!api.session || document.hidden && state.status) return;
  try {
    const [status, routers] = await Promise.all([api.get("/api/v1/system/status"), api.get("/api/v1/system/routers")]);
    state.status = status;
    state.routers = routers;
    if (!state.frame && status.engine.source) showSource(status.engine.source);
    renderRouters();
  } catch (e) {
    if (e.status !== 401) $("stat-engine").textContent = `status unavailable: ${e.message}`;
  }
}

function renderRouters() {
  const rows = state.routers.map((r) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of [[r.id], [r.kind], [r.status, `st-${r.status}`], [r.packet_rate.toFixed(1)],
      [`${(100 * r.loss).toFixed(1)} %`]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  });
  const body = $("router-rows");
  if (rows.length) body.replaceChildren(...rows);
  else body.innerHTML = '<tr><td colspan="5" class="muted">no routers</td></tr>';
}

// ------------------------------------------------------------------------------------------------ MJPEG
function setMjpeg(on) {
  const img = $("mjpeg");
  if (on && api.token) {
    img.src = `/api/v1/visualization/mjpeg?token=${encodeURIComponent(api.token)}`;
    img.hidden = false;
    $("pose-canvas").hidden = true;
  } else {
    img.removeAttribute("src"); // closes the multipart connection
    img.hidden = true;
    $("pose-canvas").hidden = false;
  }
}
$("show-mjpeg").addEventListener("change", (ev) => setMjpeg(ev.target.checked));
$("show-heatmap").addEventListener("change", (ev) => { floorView.showHeat = ev.target.checked; });

// ------------------------------------------------------------------------------------------------ render loop
function renderStats() {
  const s = state.status;
  const clientFps = state.frameTimes.length > 1
    ? (state.frameTimes.length - 1) / ((state.frameTimes.at(-1) - state.frameTimes[0]) / 1000) : 0;
  $("stat-fps").textContent = `${clientFps.toFixed(1)} received` + (s ? ` · ${s.engine.fps.toFixed(1)} pipeline` : "");
  if (s) {
    const e = s.engine;
    $("stat-latency").textContent = `${e.latency_ms_p50.toFixed(1)} / ${e.latency_ms_p99.toFixed(1)} ms`;
    $("stat-frames").textContent = `${e.frames_total} / ${e.frames_dropped}`;
    const comps = Object.entries(e.components).map(([k, c]) => `${k}: ${c.status}`).join(", ");
    $("stat-engine").textContent = `${s.status}${e.source ? ` (${e.source})` : ""}${comps ? " · " + comps : ""}`;
  }
  if (state.frame) $("stat-frame-latency").textContent = `${state.frame.latency_ms.toFixed(1)} ms (frame ${state.frame.frame_id})`;
  const rate = api.rate ? ` · ${api.rate.remaining}/${api.rate.limit} requests left` : "";
  $("stat-stream").textContent = `${state.conn}, ${state.frames} frames, ${state.dropped} dropped${rate}`;
}

function occupancy() {
  const occ = new Map();
  for (const p of state.frame ? state.frame.persons : []) for (const z of p.zone_ids) occ.set(z, (occ.get(z) || 0) + 1);
  return occ;
}

function renderTracks() {
  const persons = state.frame ? state.frame.persons : [];
  $("person-count").textContent = String(persons.length);
  const chips = persons.map((p) => {
    const span = document.createElement("span");
    span.className = "chip";
    span.style.background = trackColor(p.track_id);
    span.textContent = `#${p.track_id} ${p.activity || ""} ${p.zone_ids.length ? "in " + p.zone_ids.join(",") : ""}`.trim();
    return span;
  });
  $("tracks").replaceChildren(...chips);
}

function renderZoneList(occ) {
  const items = state.zones.map((z) => {
    const li = document.createElement("li");
    const n = occ.get(z.id) || 0;
    const cap = z.max_occupancy ?? null;
    li.textContent = `${z.name} (${z.id}): ${n}${cap !== null ? "/" + cap : ""}${z.restricted ? " · restricted" : ""}`;
    li.dataset.zoneId = z.id;
    if (cap !== null && n > cap) li.className = "over";
    return li;
  });
  $("zone-list").replaceChildren(...items);
}

let lastDrawn = -1;
let lastDense = -1;
let lastSlow = 0;
function tick(now) {
  if (!$("dashboard").hidden) {
    if (state.frames !== lastDrawn || state.denseFrames !== lastDense) {
      lastDrawn = state.frames;
      lastDense = state.denseFrames;
      poseView.draw(state.frame, state.dense);
      renderTracks();
    }
    const occ = occupancy();
    floorView.draw({frame: state.frame, zones: state.zones, occupancy: occ, editing: editor.editing});
    if (now - lastSlow > 250) {
      lastSlow = now;
      renderStats();
      renderZoneList(occ);
      sensingPanel.draw();
      $("sensing-empty").hidden = sensingPanel.series.size > 0;
    }
  }
  requestAnimationFrame(tick);
}

// ------------------------------------------------------------------------------------------------ boot
poseView.draw(null);
if (api.session) startLive(); else showLogin("");
requestAnimationFrame(tick);
