// Zone editor: draw a new polygon (click to add vertices, Backspace removes the last), or pick a zone and drag
// its vertices; save through the config API (POST/PUT /api/v1/config/zones), or delete it.

const SNAP_M = 0.05;
const GRAB_PX = 10;

const snap = (v) => Math.round(v / SNAP_M) * SNAP_M;

export function slug(name) {
  const s = name.trim().toLowerCase().replace(/[^a-z0-9_.:-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);
  return s || "zone";
}

export class ZoneEditor {
  constructor({api, floor, el, onChange}) {
    this.api = api;
    this.floor = floor;
    this.el = el; // {form, name, id, max, restricted, save, del, cancel, error, hint, select, create}
    this.onChange = onChange; // called after a save or delete (reload the zone list)
    this.editing = null; // {id, polygon, isNew}
    this.dragIndex = -1;
    this.zones = [];

    const c = floor.canvas;
    c.addEventListener("mousedown", (ev) => this.mouseDown(ev));
    c.addEventListener("mousemove", (ev) => this.mouseMove(ev));
    window.addEventListener("mouseup", () => { this.dragIndex = -1; });
    window.addEventListener("keydown", (ev) => {
      if (!this.editing || !this.editing.isNew || ev.target.tagName === "INPUT") return;
      if (ev.key === "Backspace") { this.editing.polygon.pop(); ev.preventDefault(); }
      if (ev.key === "Escape") this.cancel();
    });
    el.create.addEventListener("click", () => this.startNew());
    el.select.addEventListener("change", () => {
      const z = this.zones.find((q) => q.id === el.select.value);
      if (z) this.startEdit(z); else this.cancel();
    });
    el.save.addEventListener("click", () => this.save());
    el.del.addEventListener("click", () => this.remove());
    el.cancel.addEventListener("click", () => this.cancel());
    el.name.addEventListener("input", () => {
      if (this.editing && this.editing.isNew && !this.el.id.dataset.touched) this.el.id.value = slug(this.el.name.value);
    });
    el.id.addEventListener("input", () => { this.el.id.dataset.touched = "1"; });
  }

  setZones(zones) {
    this.zones = zones;
    const sel = this.el.select;
    const current = sel.value;
    sel.replaceChildren(new Option("— edit a zone —", ""), ...zones.map((z) => new Option(z.name, z.id)));
    sel.value = zones.some((z) => z.id === current) ? current : "";
  }

  startNew() {
    this.editing = {id: null, polygon: [], isNew: true};
    this.el.form.hidden = false;
    this.el.del.hidden = true;
    this.el.name.value = "";
    this.el.id.value = "";
    this.el.id.disabled = false;
    delete this.el.id.dataset.touched;
    this.el.max.value = "";
    this.el.restricted.checked = false;
    this.el.select.value = "";
    this.el.error.textContent = "";
    this.el.hint.textContent = "click on the floor to add vertices (Backspace: undo), then Save";
    this.floor.canvas.classList.add("drawing");
  }

  startEdit(zone) {
    this.editing = {id: zone.id, polygon: zone.polygon.map(([x, y]) => [x, y]), isNew: false, zone};
    this.el.form.hidden = false;
    this.el.del.hidden = false;
    this.el.name.value = zone.name;
    this.el.id.value = zone.id;
    this.el.id.disabled = true;
    this.el.max.value = zone.max_occupancy ?? "";
    this.el.restricted.checked = !!zone.restricted;
    this.el.error.textContent = "";
    this.el.hint.textContent = "drag the vertices, then Save";
    this.floor.canvas.classList.remove("drawing");
  }

  cancel() {
    this.editing = null;
    this.el.form.hidden = true;
    this.el.select.value = "";
    this.el.hint.textContent = "";
    this.el.error.textContent = "";
    this.floor.canvas.classList.remove("drawing");
  }

  nearestVertex(px, py) {
    let best = -1, bestD = GRAB_PX;
    this.editing.polygon.forEach(([x, y], i) => {
      const [vx, vy] = this.floor.toCanvas(x, y);
      const d = Math.hypot(vx - px, vy - py);
      if (d <= bestD) { best = i; bestD = d; }
    });
    return best;
  }

  mouseDown(ev) {
    if (!this.editing) return;
    const [px, py] = this.floor.eventToCanvas(ev);
    const i = this.nearestVertex(px, py);
    if (i >= 0) { this.dragIndex = i; return; }
    if (this.editing.isNew) {
      const [x, y] = this.floor.toWorld(px, py);
      this.editing.polygon.push([snap(x), snap(y)]);
    }
  }

  mouseMove(ev) {
    if (!this.editing || this.dragIndex < 0) return;
    const [px, py] = this.floor.eventToCanvas(ev);
    const [x, y] = this.floor.toWorld(px, py);
    this.editing.polygon[this.dragIndex] = [snap(x), snap(y)];
  }

  body() {
    const max = this.el.max.value.trim();
    const base = this.editing.zone || {};
    return {
      ...base,
      id: this.editing.isNew ? (this.el.id.value.trim() || slug(this.el.name.value)) : this.editing.id,
      name: this.el.name.value.trim(),
      polygon: this.editing.polygon.map(([x, y]) => [+x.toFixed(3), +y.toFixed(3)]),
      max_occupancy: max === "" ? null : Math.max(0, Math.round(+max)),
      restricted: this.el.restricted.checked,
    };
  }

  async save() {
    if (!this.editing) return;
    if (this.editing.polygon.length < 3) { this.el.error.textContent = "a zone needs at least 3 vertices"; return; }
    if (!this.el.name.value.trim()) { this.el.error.textContent = "give the zone a name"; return; }
    const body = this.body();
    try {
      if (this.editing.isNew) await this.api.post("/api/v1/config/zones", body);
      else await this.api.put(`/api/v1/config/zones/${encodeURIComponent(body.id)}`, body);
      this.cancel();
      await this.onChange(body.id);
    } catch (e) {
      this.el.error.textContent = `not saved: ${e.message}`;
    }
  }

  async remove() {
    if (!this.editing || this.editing.isNew) return;
    const id = this.editing.id;
    try {
      await this.api.del(`/api/v1/config/zones/${encodeURIComponent(id)}`);
      this.cancel();
      await this.onChange(null);
    } catch (e) {
      this.el.error.textContent = `not deleted: ${e.message}`;
    }
  }
}
