// imagemachines web interface, collections: the paintings that drive a unit, a painting's own units, and your
// own painting explained. Plain JavaScript; shares app.js's globals (S, api, $, toast, writeHash, ...).
// Deep links: the hash of app.js plus index=ID, neg=1, heat=0, image=N (a painting open), upload=ID, at=LAYER,
// sim=MODE (the similar paintings' mode: content, style or composition; content when absent)
// (and acc=STRENGTH, read by accentuate.js).
"use strict";

const C = {
  indexes: [], index: null, neg: false, heat: true, image: null, upload: null, at: null, sim: "content", acc: null,
  unitGen: 0, viewGen: 0, viewKey: null,
};
const EX_K = 12;

// -- small helpers ---------------------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}
const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")).toString();
const withSize = (url, size) => `${url}${url.includes("?") ? "&" : "?"}size=${size}`;
// A percentile as every page and the CLI write it (one rule: imagemachines.index.records.percentile_label):
// one decimal, half up; 100 only at or above the collection's maximum, 0 only at or below its minimum.
const percentileLabel = (p) => { const r = Math.floor(p * 10 + 0.5) / 10; return p >= 100 ? "100" : p <= 0 ? "0" : r >= 100 ? ">99.9" : r <= 0 ? "<0.1" : r.toFixed(1); };
const pct = (p) => (p === null || p === undefined ? "" : `${percentileLabel(p)}th pct`);

function metaLine(meta) {
  return [meta.artist, meta.date].filter(Boolean).join(", ");
}

function linkText(url) {
  return /wga\.hu/i.test(url) ? "WGA page ↗" : "Web page ↗";
}

function indexesFor(model) { return C.indexes.filter((i) => i.model === model); }
function currentIndex() { return C.indexes.find((i) => i.id === C.index) || null; }

// Navigate by changing the hash. A change of the unit or layer goes through app.js's applyHash; a change of
// collection keys only is applied here (so the unit's large render is not restarted).
const COLLECTION_KEYS = ["index", "neg", "heat", "image", "upload", "at", "sim", "acc"];
function go(changes) {
  const p = new URLSearchParams(location.hash.replace(/^#/, ""));
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === false) p.delete(k); else p.set(k, String(v));
  }
  const hash = "#" + p.toString().replace(/%40/g, "@").replace(/%2C/g, ",");
  if (hash === location.hash) return;
  if (Object.keys(changes).every((k) => COLLECTION_KEYS.includes(k)) && S.info) {
    history.pushState(null, "", hash);
    appliedHash = location.hash;   // app.js: this address is shown
    collectionApply(readHash());
    if (S.unit !== null && ("index" in changes || "neg" in changes)) showExamples();
  } else {
    location.hash = hash;
  }
}

// -- hooks called by app.js ------------------------------------------------------------------------------
function collectionHash(p) {
  if (C.index) p.set("index", C.index);
  if (C.neg) p.set("neg", "1");
  if (!C.heat) p.set("heat", "0");
  if (C.image !== null) p.set("image", C.image);
  if (C.upload) p.set("upload", C.upload);
  if (C.at) p.set("at", C.at);
  if (C.sim !== "content") p.set("sim", C.sim);
  if (C.acc !== null) p.set("acc", C.acc);   // accentuate.js: the painting accentuated for the unit
}

function collectionApply(h) {
  const ids = C.indexes.map((i) => i.id);
  const mine = indexesFor(S.model);
  C.index = ids.includes(h.index) ? h.index : (mine.find((i) => i.layers.some((l) => l.name === S.layer)) || mine[0] || {}).id || null;
  C.neg = h.neg === "1";
  C.heat = h.heat !== "0";
  C.image = /^\d+$/.test(h.image || "") && C.index ? Number(h.image) : null;
  C.upload = /^[0-9a-f]{32}$/.test(h.upload || "") ? h.upload : null;
  C.at = h.at || null;
  C.sim = SIM_MODES.includes(h.sim) ? h.sim : "content";
  C.acc = /^\d+(\.\d+)?$/.test(h.acc || "") ? h.acc : null;
  $("ex-neg").checked = C.neg;
  $("ex-heat").checked = C.heat;
  setTimeout(() => { showView(); if (S.unit === null) $("examples").hidden = true; }, 0);   // after app.js selected the unit
}

function collectionUnit() {
  showExamples();
  if (!$("painting").hidden) paintingImage();
}

// -- the unit panel: its paintings -----------------------------------------------------------------------
async function showExamples() {
  const box = $("examples");
  const gen = ++C.unitGen;
  const mine = indexesFor(S.model);
  $("detail").classList.toggle("with-examples", mine.length > 0);
  if (!mine.length || S.unit === null) { box.hidden = true; return; }
  box.hidden = false;
  fillIndexSelect(mine);
  const idx = currentIndex();
  const grid = $("ex-grid");
  const note = $("ex-note");
  $("ex-notes").replaceChildren();
  if (!idx || !idx.layers.some((l) => l.name === S.layer)) {
    grid.replaceChildren();
    note.replaceChildren(`Layer ${S.layer} is not in this index. Indexed layers: `,
      ...(idx ? idx.layers : []).flatMap((l, i) => [i ? ", " : "", el("a", { href: "#", textContent: l.name,
        onclick: (e) => { e.preventDefault(); go({ layer: l.name, unit: 0 }); } })]));
    return;
  }
  note.textContent = "Loading the paintings…";
  grid.dataset.state = "loading";
  let body;
  try {
    body = await api(`/api/indexes/${idx.id}/units/${encodeURIComponent(S.layer)}/${S.unit}?${q({ k: EX_K, negative: C.neg || null })}`);
  } catch (err) {
    if (gen === C.unitGen) { note.textContent = err.message; grid.replaceChildren(); }
    return;
  }
  if (gen !== C.unitGen) return;
  const st = body.stats;
  note.textContent = `${C.neg ? "Least" : "Most"} activating of ${idx.n_images} paintings in ${idx.folder} · ` +
    `collection max ${st.max.toFixed(2)}, mean ${st.mean.toFixed(2)} · ${body.notes.ranking_text}`;
  $("ex-notes").replaceChildren(...unitNotes(body.notes));
  grid.replaceChildren(...body.examples.map((ex) => exampleCard(ex)));
  grid.dataset.state = "done";
}

// What the unit's paintings can be trusted to say: a border unit, photographs of one kind, what they share.
function unitNotes(n) {
  const out = [];
  if (n.legacy) out.push(el("p", { className: "ex-warn", id: "ex-legacy", textContent: n.legacy }));
  if (n.border) {
    out.push(el("p", { className: n.border.flagged ? "ex-warn" : "ex-note", id: "ex-border", textContent: n.border_text }));
  }
  if (n.provenance_text) out.push(el("p", { className: "ex-warn", id: "ex-provenance", textContent: n.provenance_text }));
  const side = C.neg ? "bottom" : "top";
  const found = n.content.map((e) => el("span", { className: "ex-chip", textContent: e.text,
    title: `${e.in_group} of ${e.group} paintings; ${e.in_collection} of ${e.collection} in the collection` }));
  out.push(el("p", { className: "ex-note", id: "ex-metadata" },
    found.length ? `Over-represented among its ${side} ${n.group}: ` : `No metadata value stands out among its ${side} ${n.group} `,
    ...found,
    el("small", { textContent: ` (exact test, Holm's correction over ${n.tested} values)` })));
  return out;
}

function fillIndexSelect(mine) {
  const sel = $("ex-index");
  sel.replaceChildren(...mine.map((i) => new Option(`${i.folder} (${i.n_images})`, i.id, false, i.id === C.index)));
  sel.disabled = mine.length < 2;
}

function exampleCard(ex) {
  const img = el("img", { alt: ex.meta.title || ex.path, loading: "lazy" });
  img.src = C.heat ? withSize(ex.links.overlay, 256) : withSize(ex.links.thumb, 256);
  img.dataset.thumb = withSize(ex.links.thumb, 256);
  img.dataset.overlay = withSize(ex.links.overlay, 256);
  const title = el("span", { className: "ex-title", textContent: ex.meta.title || ex.path });
  const card = el("figure", { className: "ex-card", tabIndex: 0, title: `${ex.meta.title || ex.path}\n${metaLine(ex.meta)}` },
    el("div", { className: "ex-frame" }, img),
    el("figcaption", {}, title,
      el("span", { className: "ex-meta", textContent: metaLine(ex.meta) }),
      el("span", { className: "ex-value", textContent: `#${ex.rank} · ${ex.value.toFixed(2)} · ${pct(ex.percentile)}` }),
      el("span", { className: "ex-photo", textContent: ex.photo, title: `the photograph: ${ex.photo}` }),
      ex.on_border ? el("span", { className: "ex-edge", textContent: "on the border" }) : null,
      ex.meta.link ? el("a", { className: "ex-link", href: ex.meta.link, target: "_blank", rel: "noopener noreferrer",
        textContent: linkText(ex.meta.link), onclick: (e) => e.stopPropagation() }) : null,
      typeof accentButton === "function" ? accentButton(ex.image_id) : null));
  card.dataset.imageId = ex.image_id;
  const open = () => go({ image: ex.image_id, upload: null, index: C.index });
  card.addEventListener("click", open);
  card.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
  return card;
}

function setHeat(on) {
  C.heat = on;
  for (const img of document.querySelectorAll("#ex-grid img")) img.src = on ? img.dataset.overlay : img.dataset.thumb;
  if (!$("painting").hidden) paintingImage();
  writeHash(false);
}

// -- the painting view (an indexed painting or an upload) ------------------------------------------------
const view = { body: null };

async function showView() {
  const pane = $("painting");
  if (C.image === null && !C.upload) {
    pane.hidden = true; C.viewKey = null;
    if (typeof accentShow === "function") accentShow();
    return;
  }
  pane.hidden = false;
  const key = JSON.stringify([C.index, C.image, C.upload, viewLayer(), S.model, C.sim]);
  if (key === C.viewKey) { paintingImage(); return; }
  C.viewKey = key;
  const gen = ++C.viewGen;
  $("pv-title").textContent = "Loading…";
  $("pv-meta").replaceChildren();
  $("pv-units").replaceChildren();
  $("pv-similar").replaceChildren();
  $("pv-img").removeAttribute("src");
  let body;
  try {
    body = C.upload
      ? await api(`/api/uploads/${C.upload}?${q(uploadContext())}`)
      : await api(`/api/indexes/${C.index}/images/${C.image}?${q({ layer: viewLayer(), mode: C.sim })}`);
  } catch (err) {
    if (gen !== C.viewGen) return;
    $("pv-title").textContent = C.upload && err.status === 404 ? "This upload is no longer on the server" : "Cannot show this painting";
    $("pv-meta").replaceChildren(el("p", { className: "bad", textContent: err.message }));
    return;
  }
  if (gen !== C.viewGen) return;
  view.body = body;
  showPainting(body);
}

// The layer whose units a painting view ranks: as chosen (at=), else the open unit's layer when it has
// spatial maps, else the server's default (the deepest block).
function viewLayer() {
  if (C.at) return C.at;
  return S.info && S.info.kind === "channel" && S.info.height > 1 ? S.layer : null;
}

function uploadContext() {
  const idx = currentIndex();
  return idx && idx.model === S.model ? { index: idx.id, layer: viewLayer(), mode: C.sim } : { model: S.model, layer: viewLayer() };
}

function unitOnPainting() {
  // The unit whose heatmap the large image shows: the selected unit (from the unit panel), if any.
  return S.unit !== null ? { layer: S.layer, channel: S.unit } : null;
}

function paintingImage() {
  const body = view.body;
  if (!body) return;
  const img = $("pv-img");
  const unit = unitOnPainting();
  const base = body.painting ? body.painting.links : { thumb: body.image, page: `/api/uploads/${body.id}` };
  let src = withSize(base.thumb, 768);
  let caption = "";
  if (unit && C.heat) {
    const ctx = body.painting ? "" : `&${q({ model: body.model, index: body.index })}`;
    src = withSize(`${base.page}/overlay?layer=${encodeURIComponent(unit.layer)}&channel=${unit.channel}${ctx}`, 768);
    caption = `Heatmap of ${unit.layer} · ${S.info && S.info.labels ? S.info.labels[unit.channel] : `channel ${unit.channel}`}`;
  }
  if (img.getAttribute("src") !== src) img.src = src;
  $("pv-caption").textContent = caption;
  $("pv-heat").checked = C.heat;
  $("pv-heat").parentElement.hidden = !unit;
  if (typeof accentShow === "function") accentShow();   // accentuate.js
}

function showPainting(body) {
  const p = body.painting;
  const meta = p ? p.meta : {};
  $("pv-title").textContent = p ? (meta.title || p.path) : "Your painting";
  const rows = [];
  const add = (k, v) => { if (v) rows.push(el("dt", { textContent: k }), el("dd", {}, v)); };
  if (p) {
    add("Artist", meta.artist); add("Date", meta.date); add("Label", meta.label); add("File", p.path);
    add("Size", `${p.width} × ${p.height} px`);
    add("Source", p.metadata.source || p.metadata.Source);
    if (meta.link) add("Link", el("a", { href: meta.link, target: "_blank", rel: "noopener noreferrer", textContent: linkText(meta.link) }));
  } else {
    add("Size", `${body.width} × ${body.height} (${body.format})`);
    add("Kept", "only briefly, in the server's memory");
  }
  $("pv-meta").replaceChildren(el("dl", { className: "recipe" }, ...rows));
  paintingImage();
  const layerSel = $("pv-layer");
  layerSel.replaceChildren(...body.layers.map((n) => new Option(n, n, false, n === body.layer)));
  const ranked = body.by_percentile.length ? body.by_percentile : body.units;
  const at = body.clamp ? ` at ${body.ranked_at}, before ${body.layer}'s closing ${body.clamp} (where values do not tie)` : "";
  $("pv-rank").textContent = `${body.by_percentile.length ? "ranked by their percentile in the collection" : "ranked by activation"}${at}.${body.ties.map((t) => ` ${t}`).join("")}`;
  $("pv-units").replaceChildren(...ranked.map((hit, i) => unitRow(hit, i < 6)));
  $("pv-similar-head").hidden = !body.similar.length;
  $("pv-sim").hidden = !(body.modes || []).length;
  $("pv-sim").value = C.sim;
  $("pv-sim-note").textContent = `${SIM_NOTES[C.sim]} Compared by ${body.similar_basis || body.layer}.` +
    (body.same_painting && body.same_painting.length ? ` · The same painting, photographed again, is also in the collection (${body.same_painting.length}×): not listed.` : "");
  $("pv-similar").replaceChildren(...body.similar.map((s) => similarCard(s, body)));
}

// -- similar paintings: a mode switch (what / how / where), and why each painting is close -----------------
const SIM_MODES = ["content", "style", "composition"];
const SIM_NOTES = {
  content: "Alike in what they show (the pooled activations of the deepest block).",
  style: "Alike in how they are painted (brushwork, palette, manner: channel statistics of the earlier layers, after Gatys et al.).",
  composition: "Alike in where things are (a coarse grid of a middle layer, each unit's arrangement).",
};

function similarCard(s, body) {
  const why = (s.reasons || []).map((r) => r.channel === null ? `${r.layer} statistics` : `${r.layer}:${r.channel}`);
  const card = el("figure", { className: "ex-card small", tabIndex: 0,
    title: `${s.meta.title || ""}\n${metaLine(s.meta)}${why.length ? `\nwhy: ${why.join(", ")}` : ""}` +
      (s.copies && s.copies.length ? `\n(${s.copies.length} more photograph${s.copies.length > 1 ? "s" : ""} of it in the collection)` : "") },
    el("div", { className: "ex-frame" }, el("img", { src: withSize(s.links.thumb, 128), alt: s.meta.title || "", loading: "lazy" })),
    el("figcaption", {}, el("span", { className: "ex-title", textContent: s.meta.title || `#${s.image_id}` }),
      el("span", { className: "ex-value", textContent: `similarity ${s.score.toFixed(2)}` }),
      ...(s.reasons || []).map((r) => reasonLink(r, body))));
  card.dataset.imageId = s.image_id;
  card.addEventListener("click", () => go({ image: s.image_id, upload: null, index: body.index }));
  return card;
}

function reasonLink(r, body) {
  const share = `${Math.round(100 * r.share)} %`;
  if (r.channel === null) {
    return el("span", { className: "pv-why", textContent: `${r.layer} · ${share}`,
      title: `The statistics of ${r.layer} match: ${share} of the style similarity` });
  }
  const a = el("a", { className: "pv-why", href: "#", textContent: `unit ${r.channel} · ${share}`,
    title: `${r.layer} unit ${r.channel}: ${share} of the ${r.mode} similarity. Open it` });
  a.addEventListener("click", (e) => {
    e.preventDefault(); e.stopPropagation();
    go({ layer: r.layer, unit: r.channel, image: null, upload: null, index: body.index });
  });
  return a;
}

function unitRow(hit, withRender) {
  const name = hit.label ? `${hit.label}` : `channel ${hit.channel}`;
  const render = el("img", { className: "pv-render", alt: `render of ${hit.layer} ${name}` });
  if (withRender) renderThumb(render, hit.layer, hit.channel); else render.classList.add("none");
  const row = el("button", { className: "pv-unit", type: "button", title: `Open ${hit.layer} ${name}` },
    el("img", { className: "pv-heat", src: withSize(hit.overlay, 96), alt: `heatmap of ${name}`, loading: "lazy" }),
    render,
    el("span", { className: "pv-unit-text" },
      el("b", { textContent: name }), el("small", { textContent: hit.layer }),
      el("small", { textContent: `${hit.value.toFixed(2)}${hit.percentile !== null ? ` · ${pct(hit.percentile)}` : ""}` })));
  row.dataset.channel = hit.channel;
  row.addEventListener("click", () => go({ layer: hit.layer, unit: hit.channel, image: null, upload: null }));
  return row;
}

async function renderThumb(img, layer, channel) {
  try {
    const r = await api("/api/renders", { method: "POST", body: JSON.stringify({
      model: S.model, layer, unit: channel, method: S.method, size: S.grid, steps: gridSteps(), seed: S.seed }) });
    for (let tries = 0; tries < 600; tries++) {
      const s = tries ? await api(r.links.self) : r;
      if (s.state === "done") { img.src = r.links.image; return; }
      if (["failed", "cancelled"].includes(s.state) || !img.isConnected) return;
      await sleep(1000);
    }
  } catch (_) { /* a thumbnail is optional */ }
}

// -- uploads ---------------------------------------------------------------------------------------------
// The server decodes at most a few uploads at once and answers 503 + Retry-After beyond that (or 429): the
// upload is sent again after the wait it names, a few times; a newer upload makes an older one give up.
const UPLOAD_TRIES = 6;
let uploading = 0;

async function uploadFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) { toast(`${file.name} is not an image.`); return; }
  const mine = ++uploading;
  toast(`Explaining ${file.name}…`);
  while (!S.info) await sleep(50);   // a file dropped while the page is still starting
  try {
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`/api/uploads?${q(uploadContext())}`, {
        method: "POST", body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
      const body = await res.json().catch(() => null);
      if (mine !== uploading) return;
      if ((res.status === 503 || res.status === 429) && attempt < UPLOAD_TRIES) {
        const wait = Math.min(Number(res.headers.get("Retry-After")) || 2, 30);
        toast(`The server is busy reading other pictures; sending ${file.name} again in ${wait} s…`);
        await sleep(wait * 1000);
        if (mine !== uploading) return;
        continue;
      }
      if (!res.ok) throw new Error(body && typeof body.detail === "string" ? body.detail : `${res.status} ${res.statusText}`);
      $("toast").classList.remove("show");
      go({ upload: body.id, image: null });
      return;
    }
  } catch (err) {
    if (mine === uploading) toast(err.message);
  }
}

// -- start -----------------------------------------------------------------------------------------------
const COLLECTION_HTML = `
  <section id="examples" class="examples" hidden aria-label="Paintings of the collection">
    <div class="ex-head">
      <h3>In the collection</h3>
      <select id="ex-index" aria-label="Collection index"></select>
      <label title="The paintings that drive the unit least"><input id="ex-neg" type="checkbox"> least</label>
      <label title="Show where in each painting the unit fires"><input id="ex-heat" type="checkbox" checked> heatmap</label>
    </div>
    <p id="ex-note" class="ex-note"></p>
    <div id="ex-notes" class="ex-notes"></div>
    <div id="ex-grid" class="ex-grid"></div>
  </section>`;

const PAINTING_HTML = `
  <section id="painting" class="painting" hidden role="dialog" aria-label="Painting">
    <div class="pv-stage">
      <img id="pv-img" alt="The painting">
      <p id="pv-caption" class="pv-caption"></p>
    </div>
    <div class="pv-side">
      <div class="detail-head">
        <h2 id="pv-title"></h2>
        <button id="pv-close" class="icon" title="Close (Esc)" aria-label="Close painting">×</button>
      </div>
      <label class="pv-toggle"><input id="pv-heat" type="checkbox" checked> heatmap of the selected unit</label>
      <div id="pv-meta"></div>
      <h3>Units it drives most <select id="pv-layer" aria-label="Layer"></select></h3>
      <p id="pv-rank" class="ex-note"></p>
      <div id="pv-units" class="pv-units"></div>
      <h3 id="pv-similar-head">Similar paintings <select id="pv-sim" aria-label="Similar by" title="Similar by what: content (what they show), style (how they are painted), composition (where things are)">
        <option value="content">by content</option><option value="style">by style</option><option value="composition">by composition</option></select></h3>
      <p id="pv-sim-note" class="ex-note"></p>
      <div id="pv-similar" class="ex-grid small"></div>
    </div>
  </section>
  <div id="dropzone" class="dropzone" hidden><p>Drop a painting to see which units it drives</p></div>
  <input id="upload-file" type="file" accept="image/*" hidden>`;

async function startCollections() {
  // the unit pane: its render and recipe (left) beside the unit's paintings (right)
  const detail = $("detail");
  const head = detail.querySelector(".detail-head");
  const left = el("div", { className: "detail-left" }, ...[...detail.children].filter((c) => c !== head));
  const body = el("div", { className: "detail-body" }, left);
  body.insertAdjacentHTML("beforeend", COLLECTION_HTML);
  detail.append(body);
  $("main").insertAdjacentHTML("beforeend", PAINTING_HTML);
  const button = el("button", { id: "upload-btn", className: "docs", type: "button", textContent: "Explain a painting…",
    title: "Pick or drop an image file: which units does it drive?" });
  document.querySelector(".bar .docs").before(button);
  button.addEventListener("click", () => $("upload-file").click());
  $("upload-file").addEventListener("change", (e) => { uploadFile(e.target.files[0]); e.target.value = ""; });
  $("ex-index").addEventListener("change", (e) => go({ index: e.target.value, image: null }));
  $("ex-neg").addEventListener("change", (e) => go({ neg: e.target.checked ? 1 : null }));
  $("ex-heat").addEventListener("change", (e) => setHeat(e.target.checked));
  $("pv-heat").addEventListener("change", (e) => setHeat(e.target.checked));
  $("pv-close").addEventListener("click", () => go({ image: null, upload: null }));
  $("pv-layer").addEventListener("change", (e) => go({ at: e.target.value }));
  $("pv-sim").addEventListener("change", (e) => go({ sim: e.target.value === "content" ? null : e.target.value }));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("painting").hidden) { e.stopImmediatePropagation(); go({ image: null, upload: null }); }
  }, true);
  let depth = 0;
  const zone = $("dropzone");
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
  window.addEventListener("dragenter", (e) => { if (hasFiles(e)) { depth++; zone.hidden = false; } });
  window.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) zone.hidden = true; });
  window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0; zone.hidden = true;
    uploadFile(e.dataTransfer.files[0]);
  });
  try { C.indexes = await api("/api/indexes"); } catch (_) { C.indexes = []; }
}

const collectionsReady = startCollections();
