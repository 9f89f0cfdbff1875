// map.html, the static map (imagemachines map / atlas --map): MapCanvas over the data embedded in the page.
// Works from file://: nothing is fetched but the sprite sheets beside the page.
"use strict";

(() => {
  const data = JSON.parse(document.getElementById("map-data").textContent);
  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...kids) => { const n = Object.assign(document.createElement(tag), props); n.append(...kids.filter((k) => k !== null && k !== undefined)); return n; };
  const st = { colour: "", filterFacet: "", filterValue: "", yearFrom: NaN, yearTo: NaN, search: "", selection: null };
  const map = new MapKit.MapCanvas($("map-canvas"), data, {
    geometry: data.geometry,
    sheetUrl: (s) => `sheet-${s}.jpg`,
    onHover: (i, e) => tip(i, e),
    onClick: (i) => showPainting(i),
    onSelect: (poly) => select(poly),
  });
  window.mapCanvas = map;

  function restyle() {
    const s = MapKit.styleFor(data, st);
    map.colours = s.colours; map.alpha = s.alpha; map.recomposite();
    $("map-legend").replaceChildren(...s.legend.map((l) => el("span", { className: "map-key" },
      el("i", { className: "swatch" }), `${l.value} (${l.count})`)));
    [...$("map-legend").querySelectorAll(".swatch")].forEach((sw, k) => { sw.style.background = s.legend[k].colour; });
  }

  function tip(i, e) {
    const box = $("map-tip");
    if (i < 0 || !e) { box.hidden = true; return; }
    box.replaceChildren(el("b", { textContent: data.title[i] }), el("br"),
      [data.artist[i], data.date[i]].filter(Boolean).join(", "));
    box.hidden = false;
    const r = $("map-canvas").getBoundingClientRect();
    box.style.left = `${e.clientX - r.left + 14}px`;
    box.style.top = `${e.clientY - r.top + 14}px`;
  }

  function showPainting(i) {
    const pane = $("map-painting");
    pane.hidden = false;
    const rows = [["Title", data.title[i]], ["Artist", data.artist[i]], ["Date", data.date[i]]]
      .filter(([, v]) => v).flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })]);
    pane.replaceChildren(el("h2", { textContent: data.title[i] }), el("dl", {}, ...rows),
      data.href ? el("a", { href: data.href[i], textContent: "open the image file" }) : null);
  }

  function select(poly) {
    const ids = map.idsInside(poly);
    st.selection = ids.length ? new Set(ids) : null;
    map.setSelections(ids.length ? [{ poly, colour: "#e6a23c" }] : []);
    restyle();
    const box = $("map-selection");
    box.hidden = !ids.length;
    const counts = MapKit.facetCounts(data, ids);
    $("map-selection-body").replaceChildren(el("p", { textContent: `${ids.length} paintings` }),
      ...counts.map((f) => el("p", {}, el("b", { textContent: `${f.facet}: ` }),
        f.values.map((v) => `${v.value} ${Math.round(100 * v.share)} %`).join(" · "))),
      el("button", { type: "button", textContent: "Clear selection", onclick: () => { st.selection = null; map.setSelections([]); box.hidden = true; restyle(); } }));
  }

  // controls
  for (const f of data.facets) {
    $("map-colour").append(new Option(f.name, f.name));
    $("map-filter-facet").append(new Option(f.name, f.name));
  }
  $("map-colour").addEventListener("change", (e) => { st.colour = e.target.value; restyle(); });
  $("map-filter-facet").addEventListener("change", (e) => {
    st.filterFacet = e.target.value; st.filterValue = "";
    const f = data.facets.find((x) => x.name === st.filterFacet);
    const sel = $("map-filter-value");
    sel.hidden = !f;
    sel.replaceChildren(new Option("any value", ""), ...(f ? f.values.map((v, k) => new Option(v, String(k))) : []));
    restyle();
  });
  $("map-filter-value").addEventListener("change", (e) => { st.filterValue = e.target.value; restyle(); });
  for (const [id, key] of [["map-year-from", "yearFrom"], ["map-year-to", "yearTo"]]) {
    $(id).addEventListener("change", (e) => { st[key] = e.target.value === "" ? NaN : Number(e.target.value); restyle(); });
  }
  let searchTimer = 0;
  $("map-search").addEventListener("input", (e) => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { st.search = e.target.value; restyle(); }, 200); });
  for (const b of document.querySelectorAll(".map-modes button")) {
    b.addEventListener("click", () => {
      map.setMode(b.dataset.mode);
      for (const o of document.querySelectorAll(".map-modes button")) o.setAttribute("aria-pressed", String(o === b));
    });
  }
  $("map-fit").addEventListener("click", () => map.fit());
  $("map-clusters").replaceChildren(...data.clusters.map((c) => {
    const units = c.units.map((u) => (u.href
      ? el("a", { href: u.href, textContent: `#${u.channel}` }) : el("span", { textContent: `#${u.channel}` })));
    const item = el("li", {}, el("i", { className: "swatch" }),
      el("button", { type: "button", className: "linkish", textContent: c.value ? `${c.value} · ${Math.round(100 * c.share)} %` : `cluster ${c.number}`,
        onclick: () => { const ids = []; data.cluster.forEach((k, i) => { if (k === c.number) ids.push(i); }); map.zoomTo(ids); } }),
      ` (${c.size}) units `, ...units.flatMap((u, k) => (k ? [" ", u] : [u])));
    item.querySelector(".swatch").style.background = MapKit.PALETTE[c.number % MapKit.PALETTE.length];
    return item;
  }));
  restyle();
})();
