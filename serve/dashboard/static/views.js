// Canvas views: the skeletons in image coordinates, and the floor plan (metres) with zones, occupancy, the
// heatmap, person positions and the zone being edited.

import {drawParts, drawSkeleton, trackColor} from "./skeleton.js";

const DENSE_MAX_AGE = 5; // frames: an older dense frame is not painted under newer skeletons

export class PoseView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
  }

  // dense: the latest frame of the dense_poses topic (persons with their body parts), painted under the
  // skeletons when it belongs to the frame shown (the server publishes it right after the frame itself)
  draw(frame, dense = null) {
    const {ctx, canvas} = this;
    const w = canvas.width, h = canvas.height;
    ctx.fillStyle = "#11141a";
    ctx.fillRect(0, 0, w, h);
    // keypoints are normalized coordinates of the model's square image: draw them in the centred square
    const side = Math.min(w, h), x0 = (w - side) / 2, y0 = (h - side) / 2;
    ctx.strokeStyle = "#222834";
    ctx.lineWidth = 1;
    for (let k = 0; k <= 10; k++) {
      const o = (k * side) / 10;
      ctx.beginPath(); ctx.moveTo(x0 + o, y0); ctx.lineTo(x0 + o, y0 + side); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(x0, y0 + o); ctx.lineTo(x0 + side, y0 + o); ctx.stroke();
    }
    if (!frame) {
      ctx.fillStyle = "#8a93a3";
      ctx.font = "16px system-ui";
      ctx.fillText("waiting for frames…", x0 + 20, y0 + 30);
      return;
    }
    const toPx = (x, y) => [x0 + x * side, y0 + y * side];
    if (dense && dense.frame_id <= frame.frame_id && frame.frame_id - dense.frame_id <= DENSE_MAX_AGE) {
      for (const p of dense.persons) if (p.dense) drawParts(ctx, p.dense, toPx);
    }
    ctx.font = "bold 13px system-ui";
    for (const p of frame.persons) {
      drawSkeleton(ctx, p, toPx, Math.max(2, side / 160));
      const [bx, by] = toPx(p.box[0], p.box[1]);
      ctx.fillStyle = trackColor(p.track_id);
      ctx.fillText(`#${p.track_id}${p.activity ? " " + p.activity : ""}`, bx, Math.max(12, by - 6));
    }
  }
}

const HEAT = {x0: -2, y0: -2, cell: 0.25, nx: 64, ny: 64}; // the heatmap grid (floor metres)

export class FloorView {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.bounds = {minX: 0, minY: 0, maxX: 6, maxY: 6};
    this.heat = new Float64Array(HEAT.nx * HEAT.ny);
    this.heatSince = 0; // live frames after this timestamp add to the heat (history before it came from REST)
    this.showHeat = true;
    this.trails = new Map(); // track id -> recent positions
  }

  static get heatGrid() { return HEAT; }

  include(x, y) {
    const b = this.bounds;
    b.minX = Math.min(b.minX, Math.floor(x - 0.5)); b.maxX = Math.max(b.maxX, Math.ceil(x + 0.5));
    b.minY = Math.min(b.minY, Math.floor(y - 0.5)); b.maxY = Math.max(b.maxY, Math.ceil(y + 0.5));
  }

  // metres -> canvas pixels (y up, equal scale on both axes, 30 px margin)
  get transform() {
    const b = this.bounds, m = 30;
    const s = Math.min((this.canvas.width - 2 * m) / (b.maxX - b.minX), (this.canvas.height - 2 * m) / (b.maxY - b.minY));
    const ox = m + ((this.canvas.width - 2 * m) - s * (b.maxX - b.minX)) / 2;
    const oy = this.canvas.height - m - ((this.canvas.height - 2 * m) - s * (b.maxY - b.minY)) / 2;
    return {s, ox, oy, b};
  }

  toCanvas(x, y) {
    const {s, ox, oy, b} = this.transform;
    return [ox + (x - b.minX) * s, oy - (y - b.minY) * s];
  }

  toWorld(px, py) {
    const {s, ox, oy, b} = this.transform;
    return [b.minX + (px - ox) / s, b.minY + (oy - py) / s];
  }

  // client (mouse) coordinates -> canvas pixels (the canvas is scaled by CSS)
  eventToCanvas(ev) {
    const r = this.canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * (this.canvas.width / r.width), (ev.clientY - r.top) * (this.canvas.height / r.height)];
  }

  seedHeat(heatmap) {
    this.heat.fill(0);
    heatmap.counts.forEach((row, iy) => row.forEach((c, ix) => { this.heat[iy * HEAT.nx + ix] = c; }));
    this.heatSince = heatmap.end;
    for (let iy = 0; iy < HEAT.ny; iy++) {
      for (let ix = 0; ix < HEAT.nx; ix++) {
        if (this.heat[iy * HEAT.nx + ix] > 0) this.include(HEAT.x0 + (ix + 0.5) * HEAT.cell, HEAT.y0 + (iy + 0.5) * HEAT.cell);
      }
    }
  }

  addFrame(frame) {
    const live = new Set();
    for (const p of frame.persons) {
      if (!p.position) continue;
      const [x, y] = p.position;
      live.add(p.track_id);
      this.include(x, y);
      if (frame.timestamp > this.heatSince) {
        const ix = Math.floor((x - HEAT.x0) / HEAT.cell), iy = Math.floor((y - HEAT.y0) / HEAT.cell);
        if (ix >= 0 && iy >= 0 && ix < HEAT.nx && iy < HEAT.ny) this.heat[iy * HEAT.nx + ix] += 1;
      }
      const trail = this.trails.get(p.track_id) || [];
      trail.push([x, y]);
      if (trail.length > 60) trail.shift();
      this.trails.set(p.track_id, trail);
    }
    for (const id of this.trails.keys()) if (!live.has(id)) this.trails.delete(id);
  }

  draw({frame, zones, occupancy, editing}) {
    const {ctx, canvas} = this;
    ctx.fillStyle = "#11141a";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    const {s, b} = this.transform;
    // metre grid
    ctx.strokeStyle = "#222834";
    ctx.fillStyle = "#5d6676";
    ctx.font = "10px system-ui";
    ctx.lineWidth = 1;
    for (let x = Math.ceil(b.minX); x <= b.maxX; x++) {
      const [px, py0] = this.toCanvas(x, b.minY), [, py1] = this.toCanvas(x, b.maxY);
      ctx.beginPath(); ctx.moveTo(px, py0); ctx.lineTo(px, py1); ctx.stroke();
      ctx.fillText(`${x}`, px - 3, py0 + 12);
    }
    for (let y = Math.ceil(b.minY); y <= b.maxY; y++) {
      const [px0, py] = this.toCanvas(b.minX, y), [px1] = this.toCanvas(b.maxX, y);
      ctx.beginPath(); ctx.moveTo(px0, py); ctx.lineTo(px1, py); ctx.stroke();
      ctx.fillText(`${y}`, px0 - 16, py + 3);
    }
    if (this.showHeat) this.drawHeat(s);
    for (const z of zones) this.drawZone(z, occupancy.get(z.id) || 0, editing && editing.id === z.id);
    if (editing) this.drawEditing(editing);
    for (const [id, trail] of this.trails) {
      ctx.strokeStyle = trackColor(id, 0.5);
      ctx.lineWidth = 2;
      ctx.beginPath();
      trail.forEach(([x, y], i) => { const [px, py] = this.toCanvas(x, y); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
      ctx.stroke();
    }
    if (frame) {
      ctx.font = "bold 12px system-ui";
      for (const p of frame.persons) {
        if (!p.position) continue;
        const [px, py] = this.toCanvas(p.position[0], p.position[1]);
        ctx.fillStyle = trackColor(p.track_id);
        ctx.beginPath(); ctx.arc(px, py, 7, 0, 2 * Math.PI); ctx.fill();
        ctx.fillText(`#${p.track_id}`, px + 9, py - 6);
      }
    }
  }

  drawHeat(s) {
    const {ctx} = this;
    let max = 0;
    for (const v of this.heat) max = Math.max(max, v);
    if (!max) return;
    const cell = HEAT.cell * s;
    for (let iy = 0; iy < HEAT.ny; iy++) {
      for (let ix = 0; ix < HEAT.nx; ix++) {
        const v = this.heat[iy * HEAT.nx + ix];
        if (!v) continue;
        const u = Math.sqrt(v / max); // sqrt: a few frames in a cell still show
        const [px, py] = this.toCanvas(HEAT.x0 + ix * HEAT.cell, HEAT.y0 + (iy + 1) * HEAT.cell);
        ctx.fillStyle = `hsl(${(1 - u) * 220} 90% 50% / ${0.15 + 0.5 * u})`;
        ctx.fillRect(px, py, cell + 0.5, cell + 0.5);
      }
    }
  }

  drawZone(z, count, selected) {
    const {ctx} = this;
    const over = z.max_occupancy !== null && z.max_occupancy !== undefined && count > z.max_occupancy;
    ctx.beginPath();
    z.polygon.forEach(([x, y], i) => { const [px, py] = this.toCanvas(x, y); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    ctx.closePath();
    ctx.fillStyle = over ? "rgba(224,69,75,0.25)" : count ? "rgba(74,163,255,0.18)" : "rgba(74,163,255,0.07)";
    ctx.fill();
    ctx.setLineDash(z.restricted ? [6, 4] : []);
    ctx.strokeStyle = selected ? "#ffffff" : z.restricted ? "#e0454b" : "#4aa3ff";
    ctx.lineWidth = selected ? 2.5 : 1.5;
    ctx.stroke();
    ctx.setLineDash([]);
    const cx = z.polygon.reduce((a, p) => a + p[0], 0) / z.polygon.length;
    const cy = z.polygon.reduce((a, p) => a + p[1], 0) / z.polygon.length;
    const [px, py] = this.toCanvas(cx, cy);
    ctx.fillStyle = over ? "#ff8a8f" : "#d8dde6";
    ctx.font = "bold 12px system-ui";
    const cap = z.max_occupancy !== null && z.max_occupancy !== undefined ? `/${z.max_occupancy}` : "";
    const label = `${z.name}: ${count}${cap}`;
    ctx.fillText(label, px - ctx.measureText(label).width / 2, py);
  }

  drawEditing(ed) {
    const {ctx} = this;
    const pts = ed.polygon;
    if (!pts.length) return;
    ctx.strokeStyle = "#ffd24a";
    ctx.fillStyle = "rgba(255,210,74,0.15)";
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach(([x, y], i) => { const [px, py] = this.toCanvas(x, y); if (i) ctx.lineTo(px, py); else ctx.moveTo(px, py); });
    if (pts.length >= 3) { ctx.closePath(); ctx.fill(); }
    ctx.stroke();
    ctx.fillStyle = "#ffd24a";
    for (const [x, y] of pts) {
      const [px, py] = this.toCanvas(x, y);
      ctx.fillRect(px - 4, py - 4, 8, 8);
    }
  }
}
