// imagemachines web interface, the Concepts view: what the model uses for each class of an indexed collection.
// Plain JavaScript; uses app.js's api() and views.js's Views. Registers itself when the server has an index.
// Deep link: #view=concepts&index=ID&class=NAME[&k=K][&seed=S][&concept=R] (R counts from 1, as on the page).
"use strict";

(() => {
  const DEFAULT_K = 10;
  const POLL_MS = 1000;
  const X = { indexes: [], index: null, listing: null, name: null, k: DEFAULT_K, seed: 0, concept: null,
              study: null, result: null, gen: 0, asked: 0, timer: null, visible: false };

  const $c = (id) => document.getElementById(id);
  function node(tag, { dataset, ...props } = {}, ...children) {
    const n = Object.assign(document.createElement(tag), props);
    Object.assign(n.dataset, dataset || {});
    n.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
    return n;
  }
  const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
  const who = (meta) => [meta.artist, meta.title, meta.date].filter(Boolean).join(", ");

  function address(extra = {}) {
    return { index: X.index, class: X.name, k: X.k !== DEFAULT_K ? X.k : null, seed: X.seed || null,
             concept: X.concept !== null ? X.concept + 1 : null, ...extra };
  }
  const go = (extra) => Views.go("concepts", address(extra));

  // -- show / hide -------------------------------------------------------------------------------------
  async function show(params) {
    X.visible = true;
    const ids = X.indexes.map((i) => i.id);
    const index = ids.includes(params.index) ? params.index : ids[0];
    const k = Math.min(20, Math.max(2, Number(params.k) || DEFAULT_K));
    const seed = Math.max(0, Number(params.seed) || 0);
    const concept = /^\d+$/.test(params.concept || "") && Number(params.concept) > 0 ? Number(params.concept) - 1 : null;
    const changed = index !== X.index || params.class !== X.name || k !== X.k || seed !== X.seed;
    Object.assign(X, { index, k, seed, concept });
    fillIndexes();
    if (changed || !X.listing) {
      X.name = params.class || null;
      X.study = X.result = null;
      await loadClasses();
      if (X.name) await askStatus(false);
    }
    if (X.study && (X.study.state === "queued" || X.study.state === "running")) follow();  // back while it runs
    else draw();
  }

  function hide() {
    X.visible = false;
    clearTimeout(X.timer);
  }

  function fillIndexes() {
    const sel = $c("cx-index");
    sel.replaceChildren(...X.indexes.map((i) => new Option(`${i.folder} · ${i.model}`, i.id, false, i.id === X.index)));
    sel.parentElement.hidden = X.indexes.length < 2;
  }

  // -- talking to the server ---------------------------------------------------------------------------
  async function loadClasses() {
    const gen = ++X.gen;
    try {
      const listing = await api(`/api/indexes/${encodeURIComponent(X.index)}/concepts`);
      if (gen !== X.gen) return;
      X.listing = listing;
    } catch (err) {
      X.listing = null;
      $c("cx-note").textContent = err.message;
    }
  }

  const studyPath = () => `/api/indexes/${encodeURIComponent(X.index)}/concepts/${encodeURIComponent(X.name)}`;

  // The study of the class with the current settings: started only when asked (start=true), else looked up.
  async function askStatus(start) {
    clearTimeout(X.timer);
    const gen = X.gen;
    const asked = ++X.asked;  // the latest question wins: a slower earlier look-up must not undo a start
    const body = JSON.stringify({ concepts: X.k, seed: X.seed });
    let status = null;
    if (start) {
      try {
        status = await api(studyPath(), { method: "POST", body });
      } catch (err) {
        $c("cx-note").textContent = err.status === 429 || err.status === 503
          ? `${err.message} (trying again in ${err.retryAfter} s)` : err.message;
        if (err.status === 429 || err.status === 503) X.timer = setTimeout(() => askStatus(true), err.retryAfter * 1000);
        return;
      }
    } else {  // a study asked for earlier (by anyone), or none: nothing starts without a click
      status = await api(`${studyPath()}?concepts=${X.k}&seed=${X.seed}`).catch((err) => {
        $c("cx-note").textContent = err.message;
        return null;
      });
    }
    if (gen !== X.gen || asked !== X.asked) return;
    X.study = status;
    await follow();
  }

  async function follow() {
    clearTimeout(X.timer);
    const s = X.study;
    if (s && (s.state === "queued" || s.state === "running")) {
      drawStudy();
      X.timer = setTimeout(async () => {
        if (!X.visible || !X.study || X.study.key !== s.key) return;
        try { X.study = await api(`/api/concepts/${s.key}`); } catch (err) { $c("cx-note").textContent = err.message; return; }
        await follow();
      }, POLL_MS);
      return;
    }
    if (s && s.state === "done" && (!X.result || X.result.key !== s.key)) {
      X.result = await api(s.links.result).catch((err) => { $c("cx-note").textContent = err.message; return null; });
      await loadClasses();
    }
    draw();
  }

  async function cancel() {
    if (!X.study) return;
    X.study = await api(`/api/concepts/${X.study.key}`, { method: "DELETE" }).catch(() => X.study);
    draw();
  }

  // -- drawing -----------------------------------------------------------------------------------------
  function draw() {
    drawClasses();
    drawStudy();
    drawResult();
  }

  function drawClasses() {
    const box = $c("cx-classes");
    const l = X.listing;
    $c("cx-rule").textContent = l ? `${l.model} · ${l.rule}` : "";
    box.replaceChildren(...(l ? l.classes : []).map((c) => {
      // the class on screen shows its study with the chosen settings; the others their default study
      const study = c.name === X.name && X.study ? X.study : c.study;
      const state = study ? study.state : "";
      return node("button", {
        className: "cx-class" + (c.name === X.name ? " active" : ""), type: "button", dataset: { name: c.name, state },
        onclick: () => { X.concept = null; go({ class: c.name, concept: null }); },
      }, node("span", { className: "cx-class-name", textContent: c.name }),
      node("span", { className: "cx-class-count", textContent: c.paintings === null ? "" : `${c.paintings}` }),
      state === "done" ? node("span", { className: "cx-badge", textContent: "✓", title: "studied" }) : null);
    }));
  }

  function drawStudy() {
    const box = $c("cx-study");
    const s = X.study;
    $c("cx-note").textContent = X.name ? "" : "Choose a class to see the concepts the model uses for it.";
    if (!X.name) { box.replaceChildren(); return; }
    const settings = node("span", { className: "cx-settings" },
      node("label", {}, "concepts ", node("input", { id: "cx-k", type: "number", min: 2, max: 20, value: X.k,
        onchange: (e) => go({ k: Math.min(20, Math.max(2, Number(e.target.value) || DEFAULT_K)), concept: null }) })),
      node("label", {}, "seed ", node("input", { id: "cx-seed", type: "number", min: 0, value: X.seed,
        onchange: (e) => go({ seed: Math.max(0, Number(e.target.value) || 0), concept: null }) })));
    if (!s || s.state === "cancelled" || s.state === "failed") {
      const row = (X.listing?.classes || []).find((c) => c.name === X.name);
      const n = row && row.paintings !== null ? ` (${Math.min(row.paintings, X.listing.max_images)} paintings)` : "";
      box.replaceChildren(
        node("button", { id: "cx-start", className: "button", type: "button", textContent: `Find the concepts of ${X.name}${n}`,
          onclick: () => askStatus(true) }), settings,
        s && s.state === "failed" ? node("p", { className: "cx-error", textContent: s.error || "The study failed." }) : null,
        node("p", { className: "cx-hint", textContent: "Takes a few minutes on a CPU; it runs on the server, so you can look elsewhere meanwhile." }));
      return;
    }
    if (s.state === "queued" || s.state === "running") {
      const where = s.state === "queued" ? `waiting (place ${s.queue_position || "?"})` : s.stage;
      box.replaceChildren(
        node("div", { className: "progress cx-progress" }, node("div", { style: `width:${(100 * s.progress).toFixed(1)}%` })),
        node("span", { id: "cx-stage", className: "cx-stage", textContent: `${where} · ${(100 * s.progress).toFixed(0)} %` }),
        node("button", { className: "button ghost", type: "button", textContent: "Cancel", onclick: cancel }));
      return;
    }
    box.replaceChildren(settings);
  }

  function drawResult() {
    const box = $c("cx-result");
    const r = X.result;
    if (!r || !X.study || r.key !== X.study.key) { box.replaceChildren(); return; }
    const s = r.summary;
    const head = node("div", { className: "cx-head" },
      node("p", { className: "cx-summary" },
        `${r.n_images} paintings${r.candidates > r.n_images ? ` (a sample of ${r.candidates})` : ""}` +
          `${r.copies ? ` (${r.copies} more photograph${r.copies === 1 ? "" : "s"} of the same paintings left out)` : ""} · layer ${r.layer} · `,
        `R² ${fmt(r.r2, 2)} · class evidence kept ${fmt(100 * r.logit_share, 0)} % · stability ${fmt(r.stability, 2)}`,
        node("br"),
        `p(${r.class}) ${fmt(s.probability)} → `, node("b", { textContent: fmt(s.probability - s.drop_top) }),
        ` without the ${s.steps} most important concepts, ${fmt(s.probability - s.drop_random)} without ${s.steps} random ones, `,
        `${fmt(s.probability - s.drop_units)} without the ${s.steps} most important units.`),
      node("img", { className: "cx-curves", src: r.curves, alt: `deletion and insertion curves of ${r.class}` }));
    const top = Math.max(...r.concepts.map((c) => c.sobol), 1e-9);
    const list = node("ol", { className: "cx-list" }, ...r.concepts.map((c) => conceptRow(c, top)));
    const detail = X.concept !== null && X.concept < r.concepts.length ? conceptDetail(r, r.concepts[X.concept]) : null;
    box.replaceChildren(head, node("div", { className: "cx-body" }, list, detail));
  }

  function conceptRow(c, top) {
    return node("li", {
      className: "cx-row" + (X.concept === c.rank ? " active" : ""), tabIndex: 0, dataset: { rank: c.rank + 1 },
      onclick: () => go({ concept: c.rank + 1 }),
      onkeydown: (e) => { if (e.key === "Enter") go({ concept: c.rank + 1 }); },
    },
    node("span", { className: "cx-rank", textContent: `#${c.rank + 1}` }),
    c.render ? node("img", { className: "cx-render-small", src: c.render, alt: "", loading: "lazy" }) : null,
    node("span", { className: "cx-rowbody" },
      node("span", { className: "cx-bar", title: `total Sobol index ${fmt(c.sobol)}` },
        node("span", { style: `width:${(100 * c.sobol / top).toFixed(1)}%` })),
      node("span", { className: "cx-nums", textContent: `Sobol ${fmt(c.sobol)} · ablation ${c.ablation >= 0 ? "+" : ""}${fmt(c.ablation)} · ${fmt(100 * c.share, 0)} % of crops` }),
      node("span", { className: "cx-crops-small" }, ...c.crops.slice(0, 5).map((p) =>
        node("img", { src: p.picture, alt: "", loading: "lazy", title: who(p.meta) || p.path })))));
  }

  function paintingHref(r, imageId) {
    return `#model=${encodeURIComponent(r.model)}&layer=${encodeURIComponent(r.layer)}&index=${encodeURIComponent(r.index)}&image=${imageId}`;
  }

  function figure(r, p, caption) {
    const link = p.image_id !== null && p.image_id !== undefined ? paintingHref(r, p.image_id) : null;
    const img = node("img", { src: p.picture, alt: p.path, loading: "lazy" });
    return node("figure", { className: "cx-fig" }, link ? node("a", { href: link, title: `open ${p.path}` }, img) : img,
      node("figcaption", {}, node("span", { className: "cx-value", textContent: caption }), node("br"),
        node("span", { className: "cx-who", textContent: who(p.meta) || p.path })));
  }

  function conceptDetail(r, c) {
    return node("section", { id: "cx-detail", className: "cx-detail", dataset: { rank: c.rank + 1 } },
      node("header", { className: "cx-detail-head" },
        c.render ? node("figure", { className: "cx-render" }, node("img", { src: c.render, alt: `render of concept ${c.rank + 1}` }),
          node("figcaption", { textContent: `render ${fmt(c.render_value)} · best crop ${fmt(c.best)}` })) : null,
        node("div", {},
          node("h3", { textContent: `Concept #${c.rank + 1} of ${r.class}` }),
          node("p", { className: "cx-nums", textContent: `total Sobol index ${fmt(c.sobol)} ± ${fmt(c.sobol_std)} · ablation ${fmt(c.ablation)} ± ${fmt(c.ablation_std)} (logit) · ${fmt(100 * c.share, 1)} % of the crops' coefficients · stability ${fmt(c.stability, 2)}` }),
          c.resolution_warning ? node("p", { className: "cx-error", textContent: `${fmt(100 * c.blown_up, 0)} % of its crops come from small pictures enlarged more than 5×: it may be about how the paintings were photographed (blur, JPEG blocks) rather than about them.` }) : null,
          node("button", { className: "button ghost", type: "button", textContent: "Close", onclick: () => go({ concept: null }) }))),
      node("h4", { textContent: "The crops that carry it most (one per painting; click for the painting)" }),
      node("div", { className: "cx-grid cx-crops" }, ...c.crops.map((p) => figure(r, p, fmt(p.coefficient)))),
      node("h4", { textContent: `Where it lies in the ${r.class} paintings where it is strongest` }),
      node("div", { className: "cx-grid cx-maps" }, ...c.paintings.map((p) => figure(r, p, `peak ${fmt(p.peak)}`))),
      node("h4", { textContent: "Over the whole collection: the paintings where it is strongest" }),
      c.collection.length ? node("div", { className: "cx-grid cx-maps cx-collection" },
        ...c.collection.map((p) => figure(r, p, `peak ${fmt(p.peak)}`)))
        : node("p", { className: "cx-hint", textContent: "No painting outside the class carries it." }));
  }

  // -- start -------------------------------------------------------------------------------------------
  async function init() {
    try { X.indexes = await api("/api/indexes"); } catch (_) { return; }
    if (!X.indexes.length) return;
    $c("cx-index").addEventListener("change", (e) => go({ index: e.target.value, class: null, concept: null }));
    Views.register("concepts", { show, hide });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
