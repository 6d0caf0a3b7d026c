// Training-free sensing panel: one card per router and per zone with the motion score over the last minutes
// (log scale: 1 is the calibrated quiet level; dashed: the motion threshold; shaded while motion is on, a green
// strip while someone is present), motion and presence indicators, and the breathing rate over time.
// States (SensingState JSON) come from the stream's sensing_updates and, at start, GET /api/v1/sensing/history.

export const WINDOW_S = 300; // shown: the last five minutes
const GAP_S = 5; // a longer silence between two states breaks the lines
const BPM_MAX = 40;
const COLORS = {
  bg: "#11141a", grid: "#222834", text: "#8a93a3", score: "#4aa3ff", calibrating: "#5b6473",
  threshold: "#e0454b", motion: "rgba(224, 166, 63, 0.22)", presence: "#3fbf6f", breathing: "#3fbf6f",
};

export function sensingKey(s) {
  return s.router_id !== null && s.router_id !== undefined ? `router:${s.router_id}` : `zone:${s.zone_id}`;
}

class Series {
  constructor(key, kind, id) {
    this.key = key;
    this.kind = kind; // "router" | "zone"
    this.id = id;
    this.points = []; // SensingStates, oldest first, one per timestamp
  }

  get last() { return this.points.at(-1) || null; }

  add(s) {
    const pts = this.points;
    if (!pts.length || s.timestamp > pts.at(-1).timestamp) { pts.push(s); return; }
    // history arriving after live states (or a repeat): keep time order, one state per timestamp
    let i = pts.length;
    while (i > 0 && pts[i - 1].timestamp > s.timestamp) i--;
    if (i > 0 && pts[i - 1].timestamp === s.timestamp) pts[i - 1] = s;
    else pts.splice(i, 0, s);
  }

  prune(before) {
    let n = 0;
    while (n < this.points.length && this.points[n].timestamp < before) n++;
    if (n) this.points.splice(0, n);
  }
}

export class SensingPanel {
  // zoneName(id) -> the zone's display name (or undefined)
  constructor(container, {windowS = WINDOW_S, zoneName = () => undefined} = {}) {
    this.el = container;
    this.windowS = windowS;
    this.zoneName = zoneName;
    this.series = new Map(); // key -> Series
    this.cards = new Map(); // key -> {root, canvas, ctx, name, motion, presence, bpm, cal}
    this.latest = 0; // newest state timestamp: the right edge of every chart (the sources' clock, not ours)
    this.updates = 0;
    this.dirty = true;
  }

  add(state) {
    const key = sensingKey(state);
    let s = this.series.get(key);
    if (!s) {
      const isRouter = key.startsWith("router:");
      s = new Series(key, isRouter ? "router" : "zone", isRouter ? state.router_id : state.zone_id);
      this.series.set(key, s);
    }
    s.add(state);
    if (state.timestamp > this.latest) this.latest = state.timestamp;
    this.updates += 1;
    this.dirty = true;
  }

  seed(states) {
    for (const st of states) this.add(st);
  }

  // Redraws when something changed (call it from the page's render loop).
  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const from = this.latest - this.windowS;
    for (const s of this.series.values()) s.prune(from - GAP_S);
    this.syncCards();
    for (const [key, card] of this.cards) {
      const s = this.series.get(key);
      this.drawChart(card, s, from);
      this.updateHead(card, s);
    }
  }

  // One card per series, routers first, each group by id.
  syncCards() {
    const order = [...this.series.values()].sort((a, b) =>
      a.kind === b.kind ? String(a.id).localeCompare(String(b.id)) : a.kind === "router" ? -1 : 1);
    let changed = false;
    for (const s of order) {
      if (!this.cards.has(s.key)) { this.cards.set(s.key, this.makeCard(s)); changed = true; }
    }
    if (changed) this.el.replaceChildren(...order.map((s) => this.cards.get(s.key).root));
  }

  makeCard(s) {
    const root = document.createElement("div");
    root.className = "sense-card";
    root.dataset.key = s.key;
    root.dataset.kind = s.kind;
    const head = document.createElement("div");
    head.className = "sense-head";
    const span = (cls, text = "") => {
      const e = document.createElement("span");
      e.className = cls;
      e.textContent = text;
      return e;
    };
    const name = span("sense-name");
    const motion = span("ind motion", "motion");
    const presence = span("ind presence", "presence");
    const bpm = span("sense-bpm", "– breaths/min");
    const cal = span("sense-cal muted");
    head.append(name, motion, presence, bpm, cal);
    const canvas = document.createElement("canvas");
    canvas.width = 560;
    canvas.height = 170;
    canvas.className = "sense-chart";
    root.append(head, canvas);
    return {root, canvas, ctx: canvas.getContext("2d"), name, motion, presence, bpm, cal};
  }

  updateHead(card, s) {
    const zone = s.kind === "zone" ? this.zoneName(s.id) : undefined;
    card.name.textContent = s.kind === "router" ? `router ${s.id}` : `zone ${zone && zone !== s.id ? `${zone} (${s.id})` : s.id}`;
    const last = s.last;
    const calibrating = !last || last.calibration === "calibrating";
    for (const [el, on] of [[card.motion, last && last.motion], [card.presence, last && last.presence]]) {
      el.dataset.on = calibrating ? "unknown" : on ? "true" : "false";
    }
    card.presence.textContent = last && last.presence && last.still ? "presence (still)" : "presence";
    card.bpm.textContent = last && last.breathing_bpm !== null && last.breathing_bpm !== undefined
      ? `${last.breathing_bpm.toFixed(1)} breaths/min` : "– breaths/min";
    card.cal.textContent = last
      ? `${last.calibration} · score ${last.motion_score.toFixed(2)} / ${last.threshold.toFixed(1)} · ${last.packet_rate.toFixed(0)} pkt/s`
      : "";
    card.root.dataset.motion = card.motion.dataset.on;
    card.root.dataset.presence = card.presence.dataset.on;
  }

  drawChart(card, s, from) {
    const {ctx, canvas} = card;
    const W = canvas.width, H = canvas.height;
    const left = 38, right = W - 8;
    const top = {y0: 6, y1: 104}; // motion score
    const bot = {y0: 118, y1: H - 16}; // breathing rate
    const span = this.windowS;
    const x = (t) => left + ((t - from) / span) * (right - left);
    ctx.fillStyle = COLORS.bg;
    ctx.fillRect(0, 0, W, H);
    ctx.font = "10px system-ui";
    ctx.textBaseline = "middle";
    const pts = s.points.filter((p) => p.timestamp >= from - GAP_S);

    // motion score, log scale from 0.5 to well above the threshold and the highest score shown
    const thr = Math.max(1.01, s.last ? s.last.threshold : 0);
    const maxScore = Math.max(0, ...pts.map((p) => p.motion_score));
    const lo = Math.log10(0.5), hi = Math.log10(Math.max(10, thr * 3, maxScore * 1.3));
    const y = (v) => top.y1 - ((Math.log10(Math.max(v, 0.5)) - lo) / (hi - lo)) * (top.y1 - top.y0);
    const crisp = (py) => Math.round(py) + 0.5; // a horizontal 1 px line on one pixel row, not two half-rows
    ctx.strokeStyle = COLORS.grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = COLORS.text;
    for (let v = 1; v <= 10 ** hi; v *= 10) {
      ctx.beginPath(); ctx.moveTo(left, crisp(y(v))); ctx.lineTo(right, crisp(y(v))); ctx.stroke();
      ctx.fillText(String(v), 4, y(v));
    }
    // shading: motion on (amber), presence (a green strip along the bottom)
    for (let i = 0; i < pts.length; i++) {
      const p = pts[i], next = pts[i + 1];
      if (p.calibration === "calibrating") continue;
      const t1 = next && next.timestamp - p.timestamp <= GAP_S ? next.timestamp : p.timestamp + 1;
      const xa = Math.max(left, x(p.timestamp)), xb = Math.min(right, x(t1));
      if (xb <= xa) continue;
      if (p.motion) { ctx.fillStyle = COLORS.motion; ctx.fillRect(xa, top.y0, xb - xa, top.y1 - top.y0); }
      if (p.presence) { ctx.fillStyle = COLORS.presence; ctx.fillRect(xa, top.y1 - 3, xb - xa, 3); }
    }
    // the current motion threshold across the chart (dashed), then the score (grey while calibrating)
    const last = s.last;
    if (last && last.threshold > 0) {
      ctx.setLineDash([5, 4]);
      ctx.strokeStyle = COLORS.threshold;
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(left, crisp(y(last.threshold))); ctx.lineTo(right, crisp(y(last.threshold))); ctx.stroke();
      ctx.setLineDash([]);
    }
    this.polyline(ctx, pts, x, (p) => y(p.motion_score), (p) => (p.calibration === "calibrating"
      ? COLORS.calibrating : COLORS.score), 1.6, left);
    ctx.fillStyle = COLORS.text;
    ctx.fillText("motion score", left + 4, top.y0 + 6);

    // breathing rate, 0..40 breaths/min
    const yb = (v) => bot.y1 - (Math.min(v, BPM_MAX) / BPM_MAX) * (bot.y1 - bot.y0);
    ctx.strokeStyle = COLORS.grid;
    ctx.fillStyle = COLORS.text;
    for (const v of [0, 20, 40]) {
      ctx.beginPath(); ctx.moveTo(left, crisp(yb(v))); ctx.lineTo(right, crisp(yb(v))); ctx.stroke();
      ctx.fillText(String(v), 4, yb(v));
    }
    this.polyline(ctx, pts, x, (p) => (p.breathing_bpm === null || p.breathing_bpm === undefined
      ? null : yb(p.breathing_bpm)), COLORS.breathing, 2, left);
    ctx.fillStyle = COLORS.breathing; // dots too: a rate that comes and goes is still seen
    for (const p of pts) {
      if (p.breathing_bpm !== null && p.breathing_bpm !== undefined && p.timestamp >= from) {
        ctx.fillRect(x(p.timestamp) - 1.5, yb(p.breathing_bpm) - 1.5, 3, 3);
      }
    }
    ctx.fillStyle = COLORS.text;
    ctx.fillText("breaths/min", left + 4, bot.y0 + 4);
    ctx.textBaseline = "bottom";
    ctx.fillText(`−${Math.round(span / 60)} min`, left, H - 1);
    const now = "now";
    ctx.fillText(now, right - ctx.measureText(now).width, H - 1);
  }

  // A line through the points' values (null: no value), broken at gaps; colour per segment when a function.
  polyline(ctx, pts, x, value, color, width, left) {
    ctx.lineWidth = width;
    let prev = null, prevY = null;
    for (const p of pts) {
      const v = value(p);
      if (v !== null && prev !== null && prevY !== null && p.timestamp - prev.timestamp <= GAP_S) {
        const xa = x(prev.timestamp), xb = x(p.timestamp);
        if (xb >= left) {
          ctx.strokeStyle = typeof color === "function" ? color(p) : color;
          ctx.beginPath(); ctx.moveTo(Math.max(xa, left), prevY); ctx.lineTo(xb, v); ctx.stroke();
        }
      }
      prev = p;
      prevY = v;
    }
  }
}
