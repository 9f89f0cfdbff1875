// imagemachines web interface, the Map view: the collection laid out by what the network sees (MapCanvas),
// coloured and filtered by metadata, and a lasso or rectangle selection answered by the units that set it apart.
// Deep links: #view=map&index=ID&map=NAME&sel=…&vs=…&colour=…&ff=…&fv=…&q=…&y0=…&y1=…
//   sel / vs: "c3" (cluster 3) or "p" + x_y_x_y… (outline in map coordinates × 10000).
"use strict";

const MV = {
  indexes: [], index: null, name: null, data: null, canvas: null, key: null,
  sel: null, vs: null, picking: "sel", contrastKey: null, gen: 0, cgen: 0,
  st: { colour: "", filterFacet: "", filterValue: "", yearFrom: NaN, yearTo: NaN, search: "", selection: null },
};

const mvEl = (tag, props = {}, ...kids) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...kids.filter((k) => k !== null && k !== undefined && k !== false));
  return node;
};
const mv$ = (id) => document.getElementById(id);

// -- selections in the address -------------------------------------------------------------------------------
function encodeSel(sel) {
  if (!sel) return null;
  if (sel.cluster !== undefined) return `c${sel.cluster}`;
  return "p" + sel.polygon.flat().map((v) => Math.round(v * 10000)).join("_");
}

function decodeSel(text) {
  if (!text) return null;
  let m = /^c(\d{1,5})$/.exec(text);
  if (m) return { cluster: Number(m[1]) };
  m = /^p(-?\d{1,6}(?:_-?\d{1,6}){5,1023})$/.exec(text);
  if (!m) return null;
  const v = m[1].split("_").map((s) => Number(s) / 10000);
  if (v.length % 2) return null;
  const polygon = [];
  for (let i = 0; i < v.length; i += 2) polygon.push([v[i], v[i + 1]]);
  return { polygon };
}

function mapHash(extra = {}) {
  const st = MV.st;
  return {
    index: MV.index, map: MV.name, sel: encodeSel(MV.sel), vs: encodeSel(MV.vs), colour: st.colour || null,
    ff: st.filterFacet || null, fv: st.filterFacet && st.filterValue !== "" ? st.filterValue : null,
    q: st.search || null, y0: Number.isFinite(st.yearFrom) ? st.yearFrom : null,
    y1: Number.isFinite(st.yearTo) ? st.yearTo : null, ...extra,
  };
}

function writeMapHash(push = true) { Views.go("map", mapHash(), push); }

// The units grid and its panels (app.js, collection.js) follow the address through hashchange: set it so.
function openUnits(params) { location.hash = Views.href("units", params); }

// -- the view -------------------------------------------------------------------------------------------------
const MAP_HTML = `
  <div class="map-page">
    <div class="map-tools">
      <label>Collection <select id="mv-index" aria-label="Collection"></select></label>
      <label>Map <select id="mv-map" aria-label="Map"></select></label>
      <label>Colour by <select id="mv-colour" aria-label="Colour by"><option value="">clusters</option></select></label>
      <label>Show only <select id="mv-ff" aria-label="Filter column"><option value="">everything</option></select>
        <select id="mv-fv" aria-label="Filter value" hidden></select></label>
      <label>Years <input id="mv-y0" type="number" placeholder="from" aria-label="From year"> –
        <input id="mv-y1" type="number" placeholder="to" aria-label="To year"></label>
      <input id="mv-q" type="search" placeholder="Search title or artist" aria-label="Search title or artist">
      <span class="map-modes" role="group" aria-label="Mouse">
        <button type="button" class="button ghost" data-mode="pan" aria-pressed="true">Pan</button>
        <button type="button" class="button ghost" data-mode="lasso" title="Draw round paintings (or shift-drag)">Lasso</button>
        <button type="button" class="button ghost" data-mode="rect">Rectangle</button>
      </span>
      <button type="button" class="button ghost" id="mv-fit">Fit</button>
    </div>
    <div class="map-main">
      <div class="map-stage"><canvas id="mv-canvas" aria-label="Map of the paintings"></canvas>
        <div id="mv-tip" class="map-tip" hidden></div></div>
      <aside class="map-side">
        <p id="mv-info" class="ex-note"></p>
        <div id="mv-legend" class="map-legend"></div>
        <section id="mv-result" aria-label="What sets the selection apart" hidden>
          <div class="ex-head"><h3 id="mv-result-title">Selection</h3>
            <button type="button" class="button ghost" id="mv-vs">Compare with a second selection</button>
            <button type="button" class="button ghost" id="mv-clear">Clear</button></div>
          <p id="mv-result-note" class="ex-note"></p>
          <div id="mv-meta"></div>
          <div id="mv-units" class="mc-units"></div>
        </section>
        <p id="mv-hint" class="ex-note">Draw round a group of paintings (Lasso, or shift-drag) to see which units set it apart.</p>
        <h3>Clusters</h3>
        <ol id="mv-clusters" class="map-clusters"></ol>
      </aside>
    </div>
  </div>`;

function mapStarted() {
  const section = mv$("view-map");
  if (section.dataset.built) return;
  section.dataset.built = "1";
  section.insertAdjacentHTML("beforeend", MAP_HTML);
  mv$("mv-index").addEventListener("change", (e) => { MV.index = e.target.value; MV.name = null; MV.sel = MV.vs = null; writeMapHash(); });
  mv$("mv-map").addEventListener("change", (e) => { MV.name = e.target.value; MV.sel = MV.vs = null; writeMapHash(); });
  mv$("mv-colour").addEventListener("change", (e) => { MV.st.colour = e.target.value; writeMapHash(false); });
  mv$("mv-ff").addEventListener("change", (e) => { MV.st.filterFacet = e.target.value; MV.st.filterValue = ""; writeMapHash(false); });
  mv$("mv-fv").addEventListener("change", (e) => { MV.st.filterValue = e.target.value; writeMapHash(false); });
  for (const [id, key] of [["mv-y0", "yearFrom"], ["mv-y1", "yearTo"]]) {
    mv$(id).addEventListener("change", (e) => { MV.st[key] = e.target.value === "" ? NaN : Number(e.target.value); writeMapHash(false); });
  }
  let timer = 0;
  mv$("mv-q").addEventListener("input", (e) => { clearTimeout(timer); timer = setTimeout(() => { MV.st.search = e.target.value.trim(); writeMapHash(false); }, 250); });
  for (const b of section.querySelectorAll(".map-modes button")) b.addEventListener("click", () => setMapMode(b.dataset.mode));
  mv$("mv-fit").addEventListener("click", () => MV.canvas && MV.canvas.fit());
  mv$("mv-clear").addEventListener("click", () => { MV.sel = MV.vs = null; MV.picking = "sel"; writeMapHash(); });
  mv$("mv-vs").addEventListener("click", () => {
    MV.picking = "vs";
    setMapMode("lasso");
    mv$("mv-result-note").textContent = "Now draw the second selection (blue).";
  });
}

function setMapMode(mode) {
  if (MV.canvas) MV.canvas.setMode(mode);
  for (const b of document.querySelectorAll("#view-map .map-modes button")) b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
}

async function showMap(h) {
  mapStarted();
  const usable = MV.indexes.filter((i) => i.maps.length);
  const idx = usable.find((i) => i.id === h.index) || usable[0] || MV.indexes[0];
  fillOptions(mv$("mv-index"), MV.indexes.map((i) => [i.id, `${i.folder} (${i.n_images})`]), idx && idx.id);
  if (!idx || !idx.maps.length) {
    mv$("mv-info").textContent = idx ? `No map of ${idx.folder} yet: run \`imagemachines map ${idx.path || "INDEX"}\` and reload.` : "No collection index is served.";
    return;
  }
  const name = idx.maps.some((m) => m.name === h.map) ? h.map : idx.maps[0].name;
  fillOptions(mv$("mv-map"), idx.maps.map((m) => [m.name, `${m.layer} (${m.n})`]), name);
  MV.index = idx.id;
  MV.name = name;
  const key = `${idx.id}|${name}`;
  if (key !== MV.key) {
    MV.key = key;
    MV.contrastKey = null;
    const gen = ++MV.gen;
    mv$("mv-info").textContent = "Loading the map…";
    let data;
    try { data = await api(`/api/indexes/${encodeURIComponent(idx.id)}/maps/${encodeURIComponent(name)}`); } catch (err) {
      if (gen === MV.gen) mv$("mv-info").textContent = err.message;
      return;
    }
    if (gen !== MV.gen) return;
    MV.data = data;
    MV.model = idx.model;
    buildCanvas(data);
  }
  readState(h);
  applyStyle();
  showClusters();
  const contrastKey = `${key}|${h.sel || ""}|${h.vs || ""}`;
  if (contrastKey !== MV.contrastKey) { MV.contrastKey = contrastKey; runContrast(); }
}

function fillOptions(select, items, value) {
  select.replaceChildren(...items.map(([v, t]) => new Option(t, v, false, v === value)));
}

function buildCanvas(data) {
  if (MV.canvas) MV.canvas.destroy();
  const old = mv$("mv-canvas");
  const canvas = old.cloneNode(false);   // a fresh element: no listeners of the last map
  old.replaceWith(canvas);
  const base = `/api/indexes/${encodeURIComponent(data.index)}`;
  MV.canvas = new MapKit.MapCanvas(canvas, data, {
    geometry: data.geometry,
    sheetUrl: (s) => `${base}/maps/${encodeURIComponent(data.name)}/sprites/${s}.jpg`,
    thumbUrl: (id, size) => `${base}/images/${id}/thumb?size=${size}`,
    onHover: mapTip,
    onClick: (i) => openUnits({ model: MV.model, index: data.index, image: data.image_id[i], at: data.layer }),
    onSelect: (poly) => {
      if (MV.picking === "vs" && MV.sel) MV.vs = { polygon: poly }; else { MV.sel = { polygon: poly }; MV.vs = null; }
      MV.picking = "sel";
      setMapMode("pan");
      writeMapHash();
    },
  });
  window.mapCanvas = MV.canvas;
  const nb = data.neighbourhood && data.neighbourhood.kept;
  mv$("mv-info").textContent = `${data.n} paintings by the pooled activations of ${data.layer} · ${data.clusters.length} clusters` +
    (nb !== null && nb !== undefined ? ` · ${Math.round(100 * nb)} % of map neighbours are network neighbours` : "") +
    (data.missing ? ` · ${data.missing} new paintings not on the map yet (run imagemachines map again)` : "");
  for (const [id, first] of [["mv-colour", "clusters"], ["mv-ff", "everything"]]) {
    fillOptions(mv$(id), [["", first], ...data.facets.map((f) => [f.name, f.name])], "");
  }
}

function readState(h) {
  const facets = MV.data.facets.map((f) => f.name);
  const st = MV.st;
  st.colour = facets.includes(h.colour) ? h.colour : "";
  st.filterFacet = facets.includes(h.ff) ? h.ff : "";
  st.filterValue = st.filterFacet && /^\d+$/.test(h.fv || "") ? h.fv : "";
  st.search = (h.q || "").slice(0, 200);
  st.yearFrom = /^-?\d{1,4}$/.test(h.y0 || "") ? Number(h.y0) : NaN;
  st.yearTo = /^-?\d{1,4}$/.test(h.y1 || "") ? Number(h.y1) : NaN;
  MV.sel = decodeSel(h.sel);
  MV.vs = MV.sel ? decodeSel(h.vs) : null;
  mv$("mv-colour").value = st.colour;
  mv$("mv-ff").value = st.filterFacet;
  const facet = MV.data.facets.find((f) => f.name === st.filterFacet);
  mv$("mv-fv").hidden = !facet;
  fillOptions(mv$("mv-fv"), [["", "any value"], ...(facet ? facet.values.map((v, k) => [String(k), v]) : [])], st.filterValue);
  mv$("mv-q").value = st.search;
  mv$("mv-y0").value = Number.isFinite(st.yearFrom) ? st.yearFrom : "";
  mv$("mv-y1").value = Number.isFinite(st.yearTo) ? st.yearTo : "";
}

function selectionPoints(sel) {
  if (!sel) return null;
  const d = MV.data;
  if (sel.cluster !== undefined) return d.cluster.flatMap((c, i) => (c === sel.cluster ? [i] : []));
  return MV.canvas.idsInside(sel.polygon);
}

function applyStyle() {
  const a = selectionPoints(MV.sel);
  const b = selectionPoints(MV.vs);
  MV.st.selection = a ? new Set([...a, ...(b || [])]) : null;
  const s = MapKit.styleFor(MV.data, MV.st);
  MV.canvas.colours = s.colours;
  MV.canvas.alpha = s.alpha;
  MV.canvas.recomposite();
  const outlines = [];
  for (const [sel, colour] of [[MV.sel, "#e6a23c"], [MV.vs, "#5ab0e6"]]) {
    if (sel && sel.polygon) outlines.push({ poly: sel.polygon, colour });
  }
  MV.canvas.setSelections(outlines);
  mv$("mv-legend").replaceChildren(...s.legend.map((l) => {
    const sw = mvEl("i", { className: "swatch" });
    sw.style.background = l.colour;
    return mvEl("span", { className: "map-key" }, sw, `${l.value} (${l.count})`);
  }));
  if (MV.sel && MV.sel.cluster !== undefined && a && a.length) MV.canvas.zoomTo(a);
}

function showClusters() {
  mv$("mv-clusters").replaceChildren(...MV.data.clusters.map((c) => {
    const sw = mvEl("i", { className: "swatch" });
    sw.style.background = MapKit.PALETTE[c.number % MapKit.PALETTE.length];
    const name = c.value ? `${c.value} · ${Math.round(100 * c.share)} %` : `cluster ${c.number}`;
    const button = mvEl("button", { type: "button", className: "linkish", textContent: name,
      title: "Select this cluster: what sets it apart?" });
    button.addEventListener("click", () => { MV.sel = { cluster: c.number }; MV.vs = null; writeMapHash(); });
    return mvEl("li", {}, sw, button, ` (${c.size}) · units ${c.units.slice(0, 3).map((u) => `#${u.channel}`).join(" ")}`);
  }));
}

function mapTip(i, e) {
  const box = mv$("mv-tip");
  if (i < 0 || !e) { box.hidden = true; return; }
  const d = MV.data;
  box.replaceChildren(mvEl("b", { textContent: d.title[i] }), mvEl("br"), [d.artist[i], d.date[i]].filter(Boolean).join(", "));
  box.hidden = false;
  const r = mv$("mv-canvas").getBoundingClientRect();
  box.style.left = `${Math.min(e.clientX - r.left + 14, r.width - 220)}px`;
  box.style.top = `${e.clientY - r.top + 14}px`;
}

// -- what sets the selection apart ------------------------------------------------------------------------------
async function runContrast() {
  const box = mv$("mv-result");
  mv$("mv-hint").hidden = !!MV.sel;
  if (!MV.sel) { box.hidden = true; return; }
  box.hidden = false;
  const gen = ++MV.cgen;
  mv$("mv-result-title").textContent = MV.vs ? "Orange against blue" : "Selection against the rest";
  mv$("mv-result-note").textContent = "Computing what sets it apart…";
  mv$("mv-units").replaceChildren();
  mv$("mv-meta").replaceChildren();
  mv$("mv-units").dataset.state = "loading";
  let body;
  try {
    body = await api(`/api/indexes/${encodeURIComponent(MV.index)}/maps/${encodeURIComponent(MV.name)}/contrast`, {
      method: "POST", body: JSON.stringify({ selection: MV.sel, against: MV.vs, k: 10, examples: 5 }) });
  } catch (err) {
    if (gen === MV.cgen) { mv$("mv-result-note").textContent = err.message; mv$("mv-units").dataset.state = "error"; }
    return;
  }
  if (gen !== MV.cgen) return;
  mv$("mv-result-note").textContent = `${body.n_in} paintings against ${body.n_out} · units of ${body.layer} by Cohen's d; ` +
    `p from ${body.permutations} permutations, adjusted over all units · ${Math.round(body.seconds * 1000)} ms`;
  showSelectionMeta(body);
  mv$("mv-units").replaceChildren(...body.units.map((u) => contrastUnit(body, u)));
  mv$("mv-units").dataset.state = "done";
}

function showSelectionMeta(body) {
  const items = [];
  for (const v of body.provenance) {
    items.push(mvEl("p", { className: "mc-warn", textContent: `⚠ ${v.facet} ${v.value} is over-represented (×${v.ratio.toFixed(1)}): ` +
      "the group may be about how the paintings were photographed." }));
  }
  const over = body.over_represented.filter((v) => !v.provenance).slice(0, 6);
  if (over.length) {
    items.push(mvEl("p", { className: "ex-note", textContent: "Over-represented:" }),
      mvEl("ul", { className: "mc-meta" }, ...over.map((v) => mvEl("li", { textContent:
        `${v.facet}: ${v.value} — ${v.in_group} of ${v.group} (×${v.ratio.toFixed(1)}, p ${v.p_adjusted < 0.001 ? "< 0.001" : `= ${v.p_adjusted.toPrecision(2)}`})` }))));
  }
  const major = body.majority.filter((v) => !v.provenance && v.share >= 0.25).slice(0, 4);
  if (major.length) {
    items.push(mvEl("p", { className: "ex-note", textContent: "Most common: " +
      major.map((v) => `${v.value} · ${Math.round(100 * v.share)} % (${v.facet})`).join(" · ") }));
  }
  mv$("mv-meta").replaceChildren(...items);
}

function contrastUnit(body, u) {
  const render = mvEl("img", { alt: `render of ${body.layer} unit ${u.channel}` });
  mapRenderThumb(render, body.layer, u.channel);
  const p = u.p === null ? "" : ` · p ${u.p < 0.001 ? "< 0.001" : `= ${u.p.toPrecision(2)}`}`;
  const examples = mvEl("span", { className: "mc-examples" }, ...u.examples.map((ex) => {
    const img = mvEl("img", { src: `${ex.thumb}?size=96`, alt: ex.title, title: `${ex.title} · ${ex.value.toFixed(2)}`, loading: "lazy" });
    img.dataset.imageId = ex.image_id;
    img.addEventListener("click", (e) => { e.stopPropagation(); openUnits({ model: MV.model, index: MV.index, image: ex.image_id, at: body.layer }); });
    return img;
  }));
  const row = mvEl("button", { type: "button", className: "mc-unit", title: `Open unit ${u.channel} of ${body.layer} with its paintings` },
    render,
    mvEl("span", {}, mvEl("b", { textContent: `unit ${u.channel}` }), " ",
      mvEl("span", { className: "mc-stat", textContent: `d = ${u.d >= 0 ? "+" : ""}${u.d.toFixed(2)}${p} · ${u.mean_in.toFixed(2)} vs ${u.mean_out.toFixed(2)}` }),
      mvEl("br"), mvEl("small", { className: "mc-stat", textContent: u.d >= 0 ? "top paintings in the selection:" : "in the selection, most active:" }),
      examples));
  row.dataset.channel = u.channel;
  row.addEventListener("click", () => openUnits({ model: MV.model, layer: body.layer, unit: u.channel, index: MV.index }));
  return row;
}

async function mapRenderThumb(img, layer, channel) {
  const lim = (S.config && S.config.limits) || { min_size: 64, max_size: 1024, max_steps: 256 };
  const size = Math.max(lim.min_size, Math.min(96, lim.max_size));
  try {
    const r = await api("/api/renders", { method: "POST", body: JSON.stringify({
      model: MV.model, layer, unit: channel, method: "lucid", size, steps: Math.min(128, lim.max_steps), seed: 0 }) });
    for (let tries = 0; tries < 600; tries++) {
      const s = tries ? await api(r.links.self) : r;
      if (s.state === "done") { img.src = r.links.image; return; }
      if (["failed", "cancelled"].includes(s.state) || !img.isConnected) return;
      await sleep(1000);
    }
  } catch (_) { /* a render thumbnail is optional */ }
}

// -- start ------------------------------------------------------------------------------------------------------
(async () => {
  let indexes = [];
  try { indexes = await api("/api/indexes"); } catch (_) { return; }
  if (!indexes.length) return;
  const withMaps = await Promise.all(indexes.map(async (i) => {
    try { return { ...i, maps: await api(`/api/indexes/${encodeURIComponent(i.id)}/maps`) }; } catch (_) { return { ...i, maps: [] }; }
  }));
  MV.indexes = withMaps;
  if (!withMaps.some((i) => i.maps.length)) return;
  Views.register("map", { show: (h) => showMap(h), hide: () => { mv$("mv-tip") && (mv$("mv-tip").hidden = true); } });
})();
