// MapCanvas: a collection map drawn on a 2-D canvas: every painting as a thumbnail from sprite sheets, pan and
// zoom, hover and click, lasso and rectangle selection. Shared by the interface's Map view (map.js) and the
// static map.html (mappage.js); it fetches nothing itself but the sheet images and thumbnails it is given.
//
// Drawing: all thumbnails are drawn once into an offscreen "composite" (up to 4096² px); a frame is one
// drawImage of it (pan and zoom cost the same for 300 or 30,000 paintings). Zoomed in past the composite's
// sharpness, the visible thumbnails are drawn from the sheets themselves, and larger still, from the server's
// own thumbnails (when a thumbUrl is given). Colours, filters and selections redraw the composite (~100 ms for
// 30,000). Plain canvas rather than WebGL: WebGL needs a GPU (or an unsafe software fallback) in headless
// Chromium, and sheets loaded from file:// cannot become WebGL textures, while this works everywhere.
"use strict";

const MapKit = (() => {
  const PALETTE = ["#e6a23c", "#5ab0e6", "#e05d6f", "#7cc47c", "#b48ae0", "#e0c95d", "#4fc3b5", "#f08a5d",
    "#9aa8f0", "#c2d45b", "#e58fd0", "#8fd1e6"];
  const OTHER = "#6b6760";

  // Even-odd point in polygon (as matplotlib's contains_points, which the server uses).
  function inside(px, py, poly) {
    let hit = false;
    for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      const [xi, yi] = poly[i];
      const [xj, yj] = poly[j];
      if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) hit = !hit;
    }
    return hit;
  }

  // At most `max` points of a drawn outline, evenly picked.
  function simplify(poly, max = 120) {
    if (poly.length <= max) return poly;
    const step = poly.length / max;
    return Array.from({ length: max }, (_, i) => poly[Math.floor(i * step)]);
  }

  // A facet's colours: the most common values get the palette, the rest one grey.
  function facetColours(facet, shown = PALETTE.length) {
    const counts = new Map();
    for (const c of facet.codes) if (c >= 0) counts.set(c, (counts.get(c) || 0) + 1);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, shown).map(([c]) => c);
    const colourOf = new Map(top.map((c, i) => [c, PALETTE[i]]));
    const legend = top.map((c) => ({ code: c, value: facet.values[c], colour: colourOf.get(c), count: counts.get(c) }));
    const rest = [...counts.entries()].filter(([c]) => !colourOf.has(c)).reduce((s, [, n]) => s + n, 0);
    if (rest) legend.push({ code: null, value: "other values", colour: OTHER, count: rest });
    const per = facet.codes.map((c) => (c < 0 ? null : colourOf.get(c) || OTHER));
    return { per, legend };
  }

  // Colours and visibility of every point from the page's controls: colour by clusters ("") or a facet; show
  // only one facet value, a year range, a text search; dim what is not in the selection (a Set of points).
  function styleFor(data, st) {
    let colours, legend;
    if (st.colour) {
      const facet = data.facets.find((f) => f.name === st.colour);
      ({ per: colours, legend } = facetColours(facet));
    } else {
      colours = data.cluster.map((c) => (c < 0 ? null : PALETTE[c % PALETTE.length]));
      legend = [];
    }
    const n = data.x.length;
    const alpha = new Float32Array(n).fill(1);
    const facet = st.filterFacet ? data.facets.find((f) => f.name === st.filterFacet) : null;
    const code = facet && st.filterValue !== "" && st.filterValue !== undefined ? Number(st.filterValue) : null;
    const needle = (st.search || "").trim().toLowerCase();
    const from = Number.isFinite(st.yearFrom) ? st.yearFrom : null;
    const to = Number.isFinite(st.yearTo) ? st.yearTo : null;
    let matched = 0;
    for (let i = 0; i < n; i++) {
      let ok = true;
      if (code !== null && facet.codes[i] !== code) ok = false;
      if (ok && (from !== null || to !== null)) {
        const y = data.year[i];
        ok = y !== null && (from === null || y >= from) && (to === null || y <= to);
      }
      if (ok && needle) ok = `${data.title[i]} ${data.artist[i]}`.toLowerCase().includes(needle);
      if (ok && st.selection && !st.selection.has(i)) ok = false;
      alpha[i] = ok ? 1 : 0.2;
      matched += ok;
    }
    return { colours, alpha, legend, matched };
  }

  // The most common values of every facet among points *ids*: [{facet, values: [{value, count, share}]}].
  function facetCounts(data, ids, top = 3) {
    return data.facets.map((f) => {
      const counts = new Map();
      let known = 0;
      for (const i of ids) { const c = f.codes[i]; if (c >= 0) { counts.set(c, (counts.get(c) || 0) + 1); known++; } }
      const values = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
        .map(([c, k]) => ({ value: f.values[c], count: k, share: k / Math.max(known, 1) }));
      return { facet: f.name, known, values };
    }).filter((f) => f.values.length);
  }

  class MapCanvas {
    constructor(canvas, data, options = {}) {
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.data = data;
      this.n = data.x.length;
      this.opt = options;
      this.geom = options.geometry || { cell: 32, columns: 64, per_sheet: 4096 };
      this.t = Math.min(0.08, Math.max(0.004, 1.25 / Math.sqrt(Math.max(this.n, 1))));
      this.res = Math.min(4096, Math.max(2048, Math.ceil(this.geom.cell / this.t)));
      this.sheets = [];
      this.thumbs = new Map();
      this.colours = null;
      this.alpha = new Float32Array(this.n).fill(1);
      this.selections = [];       // [{poly, colour}]
      this.drawing = null;        // the outline being drawn: {kind, points}
      this.mode = "pan";
      this.view = { cx: 0.5, cy: 0.5, scale: 1 };
      this.frames = [];           // recent frame times (ms), for benchmarks
      this.hovered = -1;
      this._bucket();
      this.composite = document.createElement("canvas");
      this.composite.width = this.composite.height = this.res;
      this._resize();
      this.fit();
      this.recomposite();
      this._wire();
      this._loadSheets();
    }

    // -- geometry ---------------------------------------------------------------------------------------
    get width() { return this.canvas.width; }
    get height() { return this.canvas.height; }
    toScreen(x, y) {
      const s = this.view.scale * Math.min(this.width, this.height);
      return [(x - this.view.cx) * s + this.width / 2, (y - this.view.cy) * s + this.height / 2];
    }
    toWorld(sx, sy) {
      const s = this.view.scale * Math.min(this.width, this.height);
      return [(sx - this.width / 2) / s + this.view.cx, (sy - this.height / 2) / s + this.view.cy];
    }
    pixelsPerWorld() { return this.view.scale * Math.min(this.width, this.height); }

    fit() {
      this._resize();
      const all = { length: this.n, [Symbol.iterator]: function* () { for (let i = 0; i < this.length; i++) yield i; } };
      this.zoomTo(all, 0.97);
    }

    zoomTo(ids, fill = 0.94) {
      let x0 = 1, y0 = 1, x1 = 0, y1 = 0;
      for (const i of ids) {
        x0 = Math.min(x0, this.data.x[i]); x1 = Math.max(x1, this.data.x[i]);
        y0 = Math.min(y0, this.data.y[i]); y1 = Math.max(y1, this.data.y[i]);
      }
      if (x1 < x0) return;
      const pad = this.t * 1.2;
      const short = Math.min(this.width, this.height);
      const sx = (this.width / short) / Math.max(x1 - x0 + pad, this.t * 4);
      const sy = (this.height / short) / Math.max(y1 - y0 + pad, this.t * 4);
      this.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, scale: Math.min(80, fill * Math.min(sx, sy)) };
      this.draw();
    }

    _resize() {
      const dpr = window.devicePixelRatio || 1;
      const box = this.canvas.getBoundingClientRect();
      const w = Math.max(1, Math.round(box.width * dpr));
      const h = Math.max(1, Math.round(box.height * dpr));
      if (w !== this.canvas.width || h !== this.canvas.height) { this.canvas.width = w; this.canvas.height = h; }
    }

    // A grid of buckets (side t) for hover and click: the point under the cursor in O(1).
    _bucket() {
      this.grid = new Map();
      const side = this.t;
      for (let i = 0; i < this.n; i++) {
        const key = `${Math.floor(this.data.x[i] / side)},${Math.floor(this.data.y[i] / side)}`;
        if (!this.grid.has(key)) this.grid.set(key, []);
        this.grid.get(key).push(i);
      }
    }

    pointAt(sx, sy) {
      const [wx, wy] = this.toWorld(sx, sy);
      const side = this.t;
      const bx = Math.floor(wx / side), by = Math.floor(wy / side);
      let best = -1, bestD = (side * 0.5) ** 2;
      for (let dx = -1; dx <= 1; dx++) for (let dy = -1; dy <= 1; dy++) {
        for (const i of this.grid.get(`${bx + dx},${by + dy}`) || []) {
          if (this.alpha[i] < 0.5) continue;
          const d = (this.data.x[i] - wx) ** 2 + (this.data.y[i] - wy) ** 2;
          if (d < bestD) { bestD = d; best = i; }
        }
      }
      return best;
    }

    idsInside(poly) {
      const out = [];
      for (let i = 0; i < this.n; i++) if (inside(this.data.x[i], this.data.y[i], poly)) out.push(i);
      return out;
    }

    // -- style ------------------------------------------------------------------------------------------
    setColours(colours) { this.colours = colours; this.recomposite(); }
    setAlpha(alpha) { this.alpha = alpha; this.recomposite(); }
    setSelections(selections) { this.selections = selections; this.draw(); }
    setMode(mode) { this.mode = mode; this.canvas.dataset.mode = mode; }

    _loadSheets() {
      const count = Math.max(1, Math.ceil(this.n / this.geom.per_sheet));
      this.sheetsLoaded = 0;
      for (let s = 0; s < count; s++) {
        const img = new Image();
        img.decoding = "async";
        img.onload = () => {
          this.sheets[s] = img;
          this.sheetsLoaded += 1;
          this._compositeSheet(s);
          this.draw();
          if (this.sheetsLoaded === count) {
            this.canvas.dataset.ready = "1";
            this.opt.onReady?.();
          }
        };
        img.onerror = () => { this.canvas.dataset.sheetError = String(s); };
        img.src = this.opt.sheetUrl(s);
      }
    }

    _cellOf(i) {
      const within = i % this.geom.per_sheet;
      const c = this.geom.cell;
      return [Math.floor(i / this.geom.per_sheet), (within % this.geom.columns) * c, Math.floor(within / this.geom.columns) * c];
    }

    // Draw point i (or its placeholder) into a context whose unit square maps to `scale` px.
    _drawPoint(ctx, i, scale, ox = 0, oy = 0) {
      const side = this.t * scale;
      const x = this.data.x[i] * scale - side / 2 - ox;
      const y = this.data.y[i] * scale - side / 2 - oy;
      ctx.globalAlpha = this.alpha[i];
      if (this.colours && this.colours[i] && this.alpha[i] >= 0.5) {
        const pad = Math.max(1, side * 0.08);
        ctx.fillStyle = this.colours[i];
        ctx.fillRect(x - pad, y - pad, side + 2 * pad, side + 2 * pad);
      }
      const [s, cx, cy] = this._cellOf(i);
      const sheet = this.sheets[s];
      if (sheet) ctx.drawImage(sheet, cx, cy, this.geom.cell, this.geom.cell, x, y, side, side);
      else if (!this.colours || !this.colours[i]) {
        ctx.fillStyle = "#8a8478";
        ctx.fillRect(x + side * 0.3, y + side * 0.3, side * 0.4, side * 0.4);
      }
    }

    recomposite() {
      const ctx = this.composite.getContext("2d");
      ctx.globalAlpha = 1;
      ctx.clearRect(0, 0, this.res, this.res);
      // the dimmed first, so the paintings that count are drawn over them
      const order = [...Array(this.n).keys()].sort((a, b) => this.alpha[a] - this.alpha[b]);
      for (const i of order) this._drawPoint(ctx, i, this.res);
      ctx.globalAlpha = 1;
      this.draw();
    }

    _compositeSheet(s) {
      const ctx = this.composite.getContext("2d");
      const end = Math.min(this.n, (s + 1) * this.geom.per_sheet);
      for (let i = s * this.geom.per_sheet; i < end; i++) if (this.alpha[i] >= 0.5) this._drawPoint(ctx, i, this.res);
      ctx.globalAlpha = 1;
    }

    // -- frames -----------------------------------------------------------------------------------------
    draw() {
      if (this._pending) return;
      this._pending = requestAnimationFrame(() => { this._pending = 0; this._frame(); });
    }

    _frame() {
      const t0 = performance.now();
      this._resize();
      const ctx = this.ctx;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.width, this.height);
      const ppw = this.pixelsPerWorld();
      const [ox, oy] = this.toScreen(0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(this.composite, 0, 0, this.res, this.res, ox, oy, ppw, ppw);
      const onScreen = this.t * ppw;
      if (onScreen > this.t * this.res * 1.25) this._drawVisible(ctx, ppw, onScreen);
      this._drawOutlines(ctx);
      if (this.hovered >= 0) {
        const [hx, hy] = this.toScreen(this.data.x[this.hovered], this.data.y[this.hovered]);
        const side = Math.max(onScreen, 6);
        ctx.strokeStyle = "#f4efe6";
        ctx.lineWidth = 2;
        ctx.strokeRect(hx - side / 2 - 2, hy - side / 2 - 2, side + 4, side + 4);
      }
      const dt = performance.now() - t0;
      this.frames.push(dt);
      if (this.frames.length > 600) this.frames.splice(0, this.frames.length - 600);
    }

    _visible() {
      const [x0, y0] = this.toWorld(0, 0);
      const [x1, y1] = this.toWorld(this.width, this.height);
      const pad = this.t;
      const out = [];
      for (let i = 0; i < this.n; i++) {
        const x = this.data.x[i], y = this.data.y[i];
        if (x > x0 - pad && x < x1 + pad && y > y0 - pad && y < y1 + pad && this.alpha[i] >= 0.5) out.push(i);
      }
      return out;
    }

    _drawVisible(ctx, ppw, onScreen) {
      const visible = this._visible();
      if (visible.length > 6000) return;
      const [ox, oy] = this.toScreen(0, 0);
      const big = this.opt.thumbUrl && onScreen > this.geom.cell * 1.6 && visible.length <= 160;
      for (const i of visible) {
        this._drawPoint(ctx, i, ppw, -ox, -oy);
        if (big) this._drawThumb(ctx, i, ppw, ox, oy, onScreen);
      }
      ctx.globalAlpha = 1;
    }

    _drawThumb(ctx, i, ppw, ox, oy, side) {
      const size = side > 150 ? 384 : side > 80 ? 192 : 96;
      const key = `${i}:${size}`;
      let img = this.thumbs.get(key);
      if (!img) {
        if (this.thumbs.size > 600) this.thumbs.clear();
        img = new Image();
        img.onload = () => this.draw();
        img.src = this.opt.thumbUrl(this.data.image_id[i], size);
        this.thumbs.set(key, img);
      }
      if (!img.complete || !img.naturalWidth) return;
      const scale = Math.min(side / img.naturalWidth, side / img.naturalHeight);
      const w = img.naturalWidth * scale, h = img.naturalHeight * scale;
      const x = this.data.x[i] * ppw + ox, y = this.data.y[i] * ppw + oy;
      ctx.globalAlpha = this.alpha[i];
      ctx.fillStyle = "#0c0c0e";
      ctx.fillRect(x - side / 2, y - side / 2, side, side);
      ctx.drawImage(img, x - w / 2, y - h / 2, w, h);
      ctx.globalAlpha = 1;
    }

    _drawOutlines(ctx) {
      const outlines = [...this.selections];
      if (this.drawing && this.drawing.points.length > 1) outlines.push({ poly: this.drawing.points, colour: "#f4efe6", open: true });
      for (const sel of outlines) {
        ctx.beginPath();
        sel.poly.forEach(([x, y], k) => { const [sx, sy] = this.toScreen(x, y); if (k) ctx.lineTo(sx, sy); else ctx.moveTo(sx, sy); });
        if (!sel.open) ctx.closePath();
        ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
        ctx.setLineDash(sel.open ? [6, 4] : []);
        ctx.strokeStyle = sel.colour;
        ctx.stroke();
        if (!sel.open) { ctx.globalAlpha = 0.08; ctx.fillStyle = sel.colour; ctx.fill(); ctx.globalAlpha = 1; }
      }
      ctx.setLineDash([]);
    }

    // -- input ------------------------------------------------------------------------------------------
    _eventXY(e) {
      const box = this.canvas.getBoundingClientRect();
      const dpr = this.canvas.width / Math.max(box.width, 1);
      return [(e.clientX - box.left) * dpr, (e.clientY - box.top) * dpr];
    }

    _wire() {
      const c = this.canvas;
      let drag = null;
      c.addEventListener("wheel", (e) => {
        e.preventDefault();
        const [sx, sy] = this._eventXY(e);
        const [wx, wy] = this.toWorld(sx, sy);
        const factor = Math.exp(-e.deltaY * (e.deltaMode ? 0.05 : 0.0015));
        this.view.scale = Math.min(200, Math.max(0.3, this.view.scale * factor));
        const [nx, ny] = this.toWorld(sx, sy);
        this.view.cx += wx - nx; this.view.cy += wy - ny;
        this.draw();
        this.opt.onView?.();
      }, { passive: false });
      c.addEventListener("pointerdown", (e) => {
        if (e.button !== 0) return;
        c.setPointerCapture(e.pointerId);
        const [sx, sy] = this._eventXY(e);
        const kind = e.shiftKey ? "lasso" : this.mode;
        drag = { kind, sx, sy, moved: false, view: { ...this.view } };
        if (kind !== "pan") this.drawing = { kind, points: [this.toWorld(sx, sy)] };
      });
      c.addEventListener("pointermove", (e) => {
        const [sx, sy] = this._eventXY(e);
        if (!drag) {
          const i = this.pointAt(sx, sy);
          if (i !== this.hovered) { this.hovered = i; this.draw(); }
          this.opt.onHover?.(i, e);
          return;
        }
        if (Math.abs(sx - drag.sx) + Math.abs(sy - drag.sy) > 4) drag.moved = true;
        if (drag.kind === "pan") {
          const s = this.pixelsPerWorld();
          this.view.cx = drag.view.cx - (sx - drag.sx) / s;
          this.view.cy = drag.view.cy - (sy - drag.sy) / s;
        } else if (drag.kind === "lasso") {
          this.drawing.points.push(this.toWorld(sx, sy));
        } else {
          const [ax, ay] = this.toWorld(drag.sx, drag.sy);
          const [bx, by] = this.toWorld(sx, sy);
          this.drawing.points = [[ax, ay], [bx, ay], [bx, by], [ax, by]];
        }
        this.draw();
      });
      const end = (e) => {
        if (!drag) return;
        const d = drag;
        drag = null;
        if (d.kind === "pan") {
          if (!d.moved) { const i = this.pointAt(...this._eventXY(e)); if (i >= 0) this.opt.onClick?.(i, e); }
          else this.opt.onView?.();
          return;
        }
        const poly = simplify(this.drawing.points);
        this.drawing = null;
        this.draw();
        if (d.moved && poly.length >= 3) this.opt.onSelect?.(poly.map(([x, y]) => [+x.toFixed(4), +y.toFixed(4)]));
      };
      c.addEventListener("pointerup", end);
      c.addEventListener("pointercancel", () => { drag = null; this.drawing = null; this.draw(); });
      c.addEventListener("pointerleave", () => { if (!drag && this.hovered >= 0) { this.hovered = -1; this.draw(); this.opt.onHover?.(-1); } });
      this._observer = new ResizeObserver(() => this.draw());
      this._observer.observe(c);
    }

    destroy() { this._observer?.disconnect(); this.sheets = []; this.thumbs.clear(); }
  }

  return { MapCanvas, inside, simplify, facetColours, styleFor, facetCounts, PALETTE, OTHER };
})();
