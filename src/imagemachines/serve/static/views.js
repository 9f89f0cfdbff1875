// The view switcher: the URL hash's `view` names what is on screen. No `view` is the units grid (app.js).
//
// A view lives in its own file and its own <section id="view-NAME" class="view" hidden> of index.html, with a
// link <a data-view="NAME" hidden> in <nav id="views">. It registers itself once it knows it can be shown
// (e.g. an index is served):
//     Views.register("map", { show(params) { … }, hide() { … } });
// show(params) gets the hash's parameters every time the hash changes while the view is on screen (deep links,
// back/forward); hide() is called when another view takes the screen. Views.go("map", {layer: "x"}) switches.
"use strict";

const Views = (() => {
  const views = new Map();          // name -> {show(params), hide()}
  let current = "units";
  let unitsHash = "";               // the grid's last address, for the Units link
  let applied = null;               // the hash last applied: hashchange and popstate both fire for one change

  const params = () => Object.fromEntries(new URLSearchParams(location.hash.replace(/^#/, "")));
  const wanted = (h) => (h.view && views.has(h.view) ? h.view : "units");

  function apply(force = false) {
    if (location.hash === applied && force !== true) return;
    applied = location.hash;
    const h = params();
    const next = wanted(h);
    if (next === "units" && !h.view) unitsHash = location.hash;
    if (next !== current && views.has(current)) views.get(current).hide?.();
    current = next;
    document.body.dataset.view = next;
    document.getElementById("main").hidden = next !== "units";
    for (const section of document.querySelectorAll("section.view")) section.hidden = section.id !== `view-${next}`;
    for (const link of document.querySelectorAll("#views a[data-view]")) {
      if (link.dataset.view === next) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
      if (link.dataset.view === "units") link.href = unitsHash || "#";
    }
    if (next !== "units") views.get(next).show(h);
  }

  function register(name, view) {
    views.set(name, view);
    const link = document.querySelector(`#views a[data-view="${name}"]`);
    if (link) link.hidden = false;
    document.getElementById("views").hidden = false;
    if (params().view === name) apply(true);
  }

  // Another view's address: `view=NAME` and the given parameters (undefined/null/"" left out).
  function href(name, extra = {}) {
    const p = new URLSearchParams();
    if (name !== "units") p.set("view", name);
    for (const [k, v] of Object.entries(extra)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
    return "#" + p.toString();
  }

  function go(name, extra = {}, push = true) {
    const hash = href(name, extra);
    if (hash === location.hash) return;
    history[push ? "pushState" : "replaceState"](null, "", hash);
    apply();
  }

  window.addEventListener("hashchange", () => apply());
  window.addEventListener("popstate", () => apply());
  apply();
  return { register, apply, go, href, params, current: () => current };
})();
