// imagemachines web interface: plain JavaScript, no build step, no network beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const SIZES = [64, 96, 128, 160, 192, 224, 256, 299, 384, 512, 768, 900, 1024];
const GRID_SIZES = [32, 48, 64, 96, 128];

// What is on screen; the URL hash mirrors it (deep links).
const S = {
  config: null, models: [], layers: [], info: null,
  model: null, layer: null, method: "lucid", size: 224, steps: 256, seed: 0, grid: 64,
  unit: null, x: null, y: null,
};

// -- HTTP ------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status, retryAfter, fault) {
    super(message); this.status = status; this.retryAfter = retryAfter; this.fault = fault;
  }
}
// Whether a failure is the server's own (a bug, a crash, the network), so the same request may work a second time;
// the server says so in "fault" ("request": change the request; "busy": wait for Retry-After).
const serverFault = (err) => !(err instanceof ApiError) || err.fault === "server";

async function api(path, options = {}) {
  const res = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `${res.status} ${res.statusText}`;
    throw new ApiError(detail, res.status, Number(res.headers.get("Retry-After")) || 2, body && body.fault);
  }
  return body;
}

const postRender = (unit, size, steps) => api("/api/renders", {
  method: "POST",
  body: JSON.stringify({ model: S.model, layer: S.layer, unit, method: S.method, size, steps, seed: S.seed }),
});

// Thumbnails on a CPU server take fewer steps than the large image, so a grid fills in minutes, not hours.
const CPU_GRID_STEPS = 64;
function gridSteps() {
  const model = S.models.find((m) => m.name === S.model);
  return model && model.device === "cpu" ? Math.min(S.steps, CPU_GRID_STEPS) : S.steps;
}
const cancelRender = (id) => fetch(`/api/renders/${id}`, { method: "DELETE" }).catch(() => {});

let toastTimer = 0;
function toast(message) {
  const el = $("toast");
  el.textContent = message;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 6000);
}

// -- deep links ------------------------------------------------------------------------------------------
function readHash() {
  return Object.fromEntries(new URLSearchParams(location.hash.replace(/^#/, "")));
}

function writeHash(push) {
  const p = new URLSearchParams();
  p.set("model", S.model);
  p.set("layer", S.layer);
  if (S.unit !== null) p.set("unit", S.x !== null ? `${S.unit}@${S.x},${S.y}` : String(S.unit));
  p.set("method", S.method);
  p.set("size", S.size);
  p.set("steps", S.steps);
  p.set("seed", S.seed);
  p.set("grid", S.grid);
  if (typeof collectionHash === "function") collectionHash(p);   // collection.js: index, image, upload…
  const hash = "#" + p.toString().replace(/%40/g, "@").replace(/%2C/g, ",");
  if (hash !== location.hash) history[push ? "pushState" : "replaceState"](null, "", hash);
  appliedHash = location.hash;
  Views.apply();   // views.js keeps the grid's address for its Units link
}

const intIn = (text, lo, hi) => {
  const n = Number.parseInt(text, 10);
  return Number.isFinite(n) && n >= lo && n <= hi ? n : null;
};

// -- controls --------------------------------------------------------------------------------------------
function methodDefaults(method) {
  return S.config.methods.find((m) => m.name === method).defaults;
}

function fillSelect(select, items, value) {
  select.replaceChildren(...items.map(([val, text]) => new Option(text, val, false, String(val) === String(value))));
}

function sizeChoices(list, extra) {
  const { min_size: lo, max_size: hi } = S.config.limits;
  return [...new Set([...list, ...extra])].filter((n) => n >= lo && n <= hi).sort((a, b) => a - b);
}

function syncControls() {
  fillSelect($("model"), S.models.map((m) => [m.name, m.name]), S.model);
  fillSelect($("layer"), S.layers.map((l) => [l.name,
    `${l.name} — ${l.channels} ${l.kind === "class" ? "classes" : "ch"}${l.height > 1 ? ` · ${l.width}×${l.height}` : ""}`]),
  S.layer);
  fillSelect($("method"), S.config.methods.map((m) => [m.name, m.name]), S.method);
  fillSelect($("size"), sizeChoices(SIZES, [S.size, methodDefaults(S.method).size]).map((n) => [n, `${n} px`]), S.size);
  fillSelect($("grid-size"), sizeChoices(GRID_SIZES, [S.grid]).map((n) => [n, `${n} px`]), S.grid);
  $("steps").value = S.steps;
  $("steps").max = S.config.limits.max_steps;
  $("seed").value = S.seed;
}

function defaultLayer(layers) {
  const channelLayers = layers.filter((l) => l.kind === "channel" && l.height > 1);
  const pool = channelLayers.length ? channelLayers : layers;
  return pool[Math.floor(pool.length * 0.6)].name;
}

async function loadModel(name) {
  S.model = name;
  S.layers = await api(`/api/models/${encodeURIComponent(name)}/layers`);
}

// Apply the URL hash (on load, back/forward, pasted links).
let appliedHash = null;
async function applyHash() {
  if (location.hash === appliedHash) return;   // popstate and hashchange can both fire for one change
  const h = readHash();
  if (h.view) { closeDetail(false); return; }   // another view is on screen (views.js); the grid waits
  appliedHash = location.hash;
  const lim = S.config.limits;
  const model = S.models.some((m) => m.name === h.model) ? h.model : S.config.default_model;
  if (model !== S.model || !S.layers.length) await loadModel(model);
  const layer = S.layers.some((l) => l.name === h.layer) ? h.layer : defaultLayer(S.layers);
  const method = S.config.methods.some((m) => m.name === h.method) ? h.method : "lucid";
  const defaults = methodDefaults(method);
  const clampSize = (n) => Math.min(lim.max_size, Math.max(lim.min_size, n));
  const next = {
    layer, method,
    size: intIn(h.size, lim.min_size, lim.max_size) ?? clampSize(defaults.size),
    steps: intIn(h.steps, 1, lim.max_steps) ?? Math.min(defaults.steps, lim.max_steps),
    seed: intIn(h.seed, 0, 2 ** 31 - 1) ?? 0,
    grid: intIn(h.grid, lim.min_size, lim.max_size) ?? clampSize(64),
  };
  holdLargeLink(next, defaults);
  const gridChanged = ["layer", "method", "steps", "seed", "grid"].some((k) => next[k] !== S[k]) ||
    model !== gridModel;
  Object.assign(S, next);
  S.info = S.layers.find((l) => l.name === S.layer);
  syncControls();
  if (gridChanged) buildGrid();
  if (typeof collectionApply === "function") collectionApply(h);
  const m = /^(\d+)(?:@(\d+),(\d+))?$/.exec(h.unit || "");
  const unit = m ? intIn(m[1], 0, S.info.channels - 1) : null;
  if (unit === null) { closeDetail(false); return; }
  selectUnit(unit, m[2] !== undefined ? +m[2] : null, m[3] !== undefined ? +m[3] : null, null);
}

// A link opened from elsewhere (another site, a mail) renders nothing larger than the interface's defaults until
// the user acts: what it asks for beyond them is shown with one "Render" button, and the defaults are used
// meanwhile. Values the user chose here (controls, the button) count as defaults from then on.
const approved = { size: 0, steps: 0, grid: 0 };
const linkGate = { hash: null };

function holdLargeLink(next, defaults) {
  const lim = S.config.limits;
  const usual = {
    size: Math.max(approved.size, Math.min(lim.max_size, Math.max(lim.min_size, defaults.size))),
    steps: Math.max(approved.steps, Math.min(defaults.steps, lim.max_steps)),
    grid: Math.max(approved.grid, Math.min(lim.max_size, Math.max(lim.min_size, 64))),
  };
  const words = { size: (n) => `a ${n} px image`, steps: (n) => `${n} steps`, grid: (n) => `${n} px thumbnails` };
  const over = Object.keys(usual).filter((k) => next[k] > usual[k]);
  if (!over.length) { hideLinkGate(); return; }
  linkGate.hash = location.hash;
  linkGate.asked = Object.fromEntries(over.map((k) => [k, next[k]]));
  $("link-gate-text").textContent = `This link asks for ${over.map((k) => words[k](next[k])).join(", ")}; ` +
    `shown meanwhile at ${over.map((k) => words[k](usual[k])).join(", ")}. Renders this large take long.`;
  for (const k of over) next[k] = usual[k];
  $("link-gate").hidden = false;
}

function hideLinkGate() {
  linkGate.hash = null;
  $("link-gate").hidden = true;
}

function renderAsLinked() {
  if (linkGate.hash === null) return;
  for (const [k, v] of Object.entries(linkGate.asked)) approved[k] = Math.max(approved[k], v);
  const hash = linkGate.hash;
  hideLinkGate();
  history.replaceState(null, "", hash);
  appliedHash = null;
  applyHash();
}

function controlsChanged(what) {
  if (what in approved) approved[what] = Math.max(approved[what], S[what]);
  hideLinkGate();
  if (what === "method") {
    const d = methodDefaults(S.method);
    const lim = S.config.limits;
    S.size = Math.min(lim.max_size, Math.max(lim.min_size, d.size));
    S.steps = Math.min(d.steps, lim.max_steps);
  }
  if (what === "layer" || what === "model") { S.unit = null; S.x = S.y = null; }
  S.info = S.layers.find((l) => l.name === S.layer);
  syncControls();
  writeHash(true);
  if (what !== "size") buildGrid();
  if (S.unit !== null) openDetail(); else closeDetail(false);
}

function wireControls() {
  $("model").addEventListener("change", async (e) => {
    await loadModel(e.target.value);
    S.layer = defaultLayer(S.layers);
    controlsChanged("model");
  });
  $("layer").addEventListener("change", (e) => { S.layer = e.target.value; controlsChanged("layer"); });
  $("method").addEventListener("change", (e) => { S.method = e.target.value; controlsChanged("method"); });
  $("size").addEventListener("change", (e) => { S.size = +e.target.value; controlsChanged("size"); });
  $("grid-size").addEventListener("change", (e) => { S.grid = +e.target.value; controlsChanged("grid"); });
  const numeric = (id, key, lo, hi) => $(id).addEventListener("change", (e) => {
    const n = intIn(e.target.value, lo, hi);
    if (n === null) { toast(`${key} must be a whole number from ${lo} to ${hi}.`); e.target.value = S[key]; return; }
    S[key] = n;
    controlsChanged(key);
  });
  numeric("steps", "steps", 1, S.config.limits.max_steps);
  numeric("seed", "seed", 0, 2 ** 31 - 1);
  $("link-gate-render").addEventListener("click", renderAsLinked);
}

// -- the grid --------------------------------------------------------------------------------------------
let generation = 0;    // bumps when the grid is rebuilt; stale answers are dropped
let gridModel = null;
const watching = new Map();   // render id -> card, for grid renders in flight
let viewObserver = null;      // cards on screen: asked for first, together
let nearObserver = null;      // cards just off screen: asked for when the screen's are under way
const NEAR = "150px";
const PREVIEW_MS = 1000;      // a thumbnail's growing preview is fetched at most once a second

function unitName(i) {
  return S.info.labels ? S.info.labels[i] : `#${i}`;
}

function buildGrid() {
  generation += 1;
  gridModel = S.model;
  for (const [id, card] of watching) if (card.dataset.state === "queued") cancelRender(id);
  watching.clear();
  for (const o of [viewObserver, nearObserver]) if (o) o.disconnect();
  viewObserver = new IntersectionObserver(onView, { root: $("gallery") });
  nearObserver = new IntersectionObserver(onNear, { root: $("gallery"), rootMargin: NEAR });
  const info = S.info;
  const kind = info.kind === "class" ? "classes" : "channels";
  const spatial = info.height > 1 ? ` · ${info.width}×${info.height} positions` : "";
  $("layer-info").innerHTML = "";
  $("layer-info").append(
    Object.assign(document.createElement("b"), { textContent: info.name }),
    ` · ${info.type} · ${info.channels} ${kind}${spatial} · thumbnails: ${S.method}, ${S.grid} px, ${gridSteps()} steps, seed ${S.seed}`,
  );
  const cards = [];
  for (let i = 0; i < info.channels; i++) {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.index = i;
    card.dataset.state = "idle";
    card.setAttribute("role", "option");
    card.setAttribute("aria-selected", String(i === S.unit));
    card.innerHTML = '<div class="meter"><i></i></div><div class="frame"><img alt=""></div>' +
      '<div class="label"><span class="name"></span><span class="act"></span></div>';
    card.querySelector(".name").textContent = unitName(i);
    card.querySelector("img").alt = `${info.name} ${unitName(i)}`;
    card.querySelector("img").addEventListener("load", (e) => e.target.classList.add("shown"));
    card.retries = 0;
    card.addEventListener("click", () => selectUnit(i, null, null, true));
    cards.push(card);
  }
  $("grid").replaceChildren(...cards);
  cards.forEach((card) => { viewObserver.observe(card); nearObserver.observe(card); });
  $("gallery").scrollTop = 0;
}

function onView(entries) {
  for (const entry of entries) entry.target.visible = entry.isIntersecting;
  scheduleRequests();
}

function onNear(entries) {
  for (const entry of entries) {
    const card = entry.target;
    card.near = entry.isIntersecting;
    if (!card.near && card.dataset.state === "queued" && card.renderId) {
      // scrolled away before it started: free the queue slot, ask again when it comes back
      cancelRender(card.renderId);
      watching.delete(card.renderId);
      card.renderId = null;
      card.dataset.state = "idle";
    }
  }
  scheduleRequests();
}

// Ask for the thumbnails on screen in one request (the server renders them in batches), then, once none of
// those waits in the queue any more, for the cards just off screen.
let requestTimer = 0;
function scheduleRequests() {
  if (!requestTimer) requestTimer = setTimeout(() => { requestTimer = 0; requestWanted(); }, 0);
}

function requestWanted() {
  const cards = [...$("grid").children];
  const idle = (c) => c.dataset.state === "idle";
  let wanted = cards.filter((c) => c.visible && idle(c));
  if (!wanted.length && !cards.some((c) => c.visible && c.dataset.state === "queued")) {
    wanted = cards.filter((c) => c.near && idle(c));
  }
  if (wanted.length) requestThumbs(wanted.slice(0, 256), generation);
}

async function requestThumbs(cards, gen) {
  for (const card of cards) card.dataset.state = "queued";
  try {
    const r = await api("/api/renders/batch", {
      method: "POST",
      body: JSON.stringify({ model: S.model, layer: S.layer, units: cards.map((c) => Number(c.dataset.index)),
        method: S.method, size: S.grid, steps: gridSteps(), seed: S.seed }),
    });
    if (gen !== generation) return;
    const later = [];
    r.renders.forEach((created, i) => {
      const card = cards[i];
      if (created === null) { later.push(card); return; }   // the queue was full: ask again later
      card.renderId = created.id;
      card.links = created.links;
      if (created.state === "done") showThumb(card, created.links.image);
      card.dataset.state = created.state;
      watching.set(created.id, card);   // done ones too: the next poll brings their activation
    });
    if (later.length) askLater(later, r.retry_after, gen);
    poll();
  } catch (err) {
    if (gen !== generation) return;
    if (err.status === 429 || err.status === 503) { askLater(cards, err.retryAfter, gen); return; }   // busy
    for (const card of cards) cardFailed(card, err.message, serverFault(err));
  }
}

function askLater(cards, seconds, gen) {
  for (const card of cards) card.dataset.state = "waiting";
  setTimeout(() => {
    if (gen !== generation) return;
    for (const card of cards) if (card.dataset.state === "waiting") card.dataset.state = "idle";
    scheduleRequests();
  }, seconds * 1000);
}

function showThumb(card, src) {
  const img = card.querySelector("img");
  if (img.getAttribute("src") !== src) img.src = src;
}

function updateCard(card, s) {
  card.dataset.state = s.state;
  card.progress = s.progress;
  card.querySelector(".meter i").style.width = `${Math.round(s.progress * 100)}%`;
  if (s.activation !== null) card.querySelector(".act").textContent = s.activation.toFixed(2);
  const img = card.querySelector("img");
  const due = performance.now() - (card.previewAt || 0) >= PREVIEW_MS;
  if (s.state === "running" && s.step > 0 && s.step !== card.shownStep && img.complete && due) {
    card.shownStep = s.step;
    card.previewAt = performance.now();
    img.src = `${s.links.image}?step=${s.step}`;
  } else if (s.state === "done") {
    showThumb(card, s.links.image);
    card.title = `${S.info.name} ${unitName(Number(card.dataset.index))}: activation ${s.activation?.toFixed(3)}`;
  } else if (s.state === "failed") {
    cardFailed(card, s.error || "The render failed.", s.fault === "server");
  }
}

// A failed thumbnail says why and offers a retry. A failure that is the server's own fault (a crash, a server just
// started) is asked for once more by itself; one the request caused is not (it would fail again).
function cardFailed(card, message, byServer) {
  if (byServer && card.retries < 1) {
    card.retries += 1;
    clearCardFailure(card);
    card.dataset.state = "idle";   // asked for again while it is in view
    scheduleRequests();
    return;
  }
  card.dataset.state = "failed";
  card.title = message;
  let why = card.querySelector(".why");
  if (!why) {
    why = document.createElement("div");
    why.className = "why";
    const text = document.createElement("p");
    const retry = Object.assign(document.createElement("button"), {
      type: "button", className: "button ghost retry", textContent: "Retry" });
    retry.addEventListener("click", (e) => {
      e.stopPropagation();   // not a click on the card (which opens the unit)
      clearCardFailure(card);
      card.dataset.state = "idle";
      scheduleRequests();
    });
    why.append(text, retry);
    card.querySelector(".frame").append(why);
  }
  why.querySelector("p").textContent = message;
}

function clearCardFailure(card) {
  const why = card.querySelector(".why");
  if (why) why.remove();
  card.removeAttribute("title");
}

function nearlyDone() {
  for (const card of watching.values()) {
    if (card.dataset.state === "running" && card.progress >= 0.8) return true;
  }
  return false;
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    while (watching.size) {
      const ids = [...watching.keys()].slice(0, 200);
      try {
        const list = await api(`/api/renders?ids=${ids.join(",")}`);
        const seen = new Set();
        for (const s of list) {
          seen.add(s.id);
          const card = watching.get(s.id);
          if (!card) continue;
          updateCard(card, s);
          if (["done", "failed", "cancelled"].includes(s.state)) watching.delete(s.id);
          if (s.state === "cancelled") card.dataset.state = "idle";   // asked for again if in view
        }
        for (const id of ids) if (!seen.has(id)) watching.delete(id);
        scheduleRequests();
        showQueue();
      } catch (_) { /* server restarting: keep trying */ }
      await sleep(nearlyDone() ? 120 : 400);   // look again soon when renders are about to finish
    }
  } finally {
    polling = false;
    showQueue();
  }
}

async function showQueue() {
  try {
    const q = await api("/api/status");
    const work = q.running || q.queued ? `${q.running} rendering · ${q.queued} queued` : "";
    // render processes still starting: renders run, more slowly, in the server's own thread meanwhile
    $("queue").textContent = q.warming_up ? ["warming up", work].filter(Boolean).join(" · ") : work || "idle";
    $("queue").title = q.warming_up ? `The render processes are starting (${q.render_processes_ready} of ` +
      `${q.render_processes} ready); renders are slower until they are.` : "";
  } catch (_) {
    $("queue").textContent = "server unreachable";
  }
}

function gridColumns() {
  const cards = $("grid").children;
  if (!cards.length) return 1;
  const top = cards[0].offsetTop;
  let n = 0;
  while (n < cards.length && cards[n].offsetTop === top) n++;
  return Math.max(1, n);
}

// -- the detail pane -------------------------------------------------------------------------------------
const detail = { id: null, events: null, gen: 0, step: -1 };

function selectUnit(unit, x, y, push) {
  S.unit = unit; S.x = x; S.y = y;
  for (const card of $("grid").children) {
    card.setAttribute("aria-selected", String(Number(card.dataset.index) === unit));
  }
  const card = $("grid").children[unit];
  if (card) card.scrollIntoView({ block: "nearest" });
  if (push !== null) writeHash(push);
  openDetail();
}

function closeDetail(updateHash = true) {
  stopDetail();
  $("detail").hidden = true;
  if (S.unit !== null && updateHash) {
    const card = $("grid").children[S.unit];
    if (card) card.setAttribute("aria-selected", "false");
    S.unit = null; S.x = S.y = null;
    writeHash(true);
  }
}

function stopDetail() {
  if (detail.events) detail.events.close();
  detail.events = null;
  if (detail.id && !watching.has(detail.id) && !["done", "failed", "cancelled"].includes(detail.state)) {
    cancelRender(detail.id);   // a large render nobody looks at any more
  }
  detail.id = null;
}

async function openDetail(retrying = false) {
  stopDetail();
  const gen = ++detail.gen;
  if (!retrying) detail.retries = 0;
  const unit = S.unit;
  $("detail").hidden = false;
  if (typeof collectionUnit === "function") collectionUnit();   // the unit's paintings
  const title = $("detail-title");
  const what = S.info.kind === "class" ? "class" : "channel";
  title.textContent = `${S.info.name} · ${what} ${unit}${S.x !== null ? ` @ ${S.x},${S.y}` : ""}`;
  if (S.info.labels) title.append(Object.assign(document.createElement("small"), { textContent: S.info.labels[unit] }));
  $("nx").value = S.x ?? ""; $("ny").value = S.y ?? "";
  $("nx").max = S.info.width - 1; $("ny").max = S.info.height - 1;
  $("neuron").hidden = S.info.kind === "class" || S.info.height <= 1;
  const img = $("detail-img");
  img.removeAttribute("src");
  img.dataset.state = "queued";
  img.alt = `Feature visualization of ${S.info.name} ${what} ${unit}`;
  $("detail-bar").style.width = "0";
  $("recipe").replaceChildren();
  setDownload(null);
  setStatus("Asking the server…");
  detail.step = -1;
  detail.state = "queued";
  const body = S.x !== null ? { channel: unit, x: S.x, y: S.y } : unit;
  let created;
  for (;;) {
    try {
      created = await postRender(body, S.size, S.steps);
      break;
    } catch (err) {
      if (gen !== detail.gen) return;
      if (err.status !== 429 && err.status !== 503) { detailFailed(err.message, serverFault(err)); return; }
      setStatus(`The server is busy; trying again in ${err.retryAfter} s…`);
      await sleep(err.retryAfter * 1000);
      if (gen !== detail.gen) return;
    }
  }
  if (gen !== detail.gen) return;
  detail.id = created.id;
  detail.state = created.state;
  if (created.state === "done") {
    showDetail(await api(created.links.self));
    return;
  }
  const events = new EventSource(created.links.events);
  detail.events = events;
  const onEvent = (e) => { if (gen === detail.gen) showDetail(JSON.parse(e.data)); };
  for (const name of ["progress", "done", "failed", "cancelled"]) events.addEventListener(name, onEvent);
  for (const name of ["done", "failed", "cancelled"]) events.addEventListener(name, () => events.close());
  events.onerror = () => {   // connection lost: fall back to polling the status
    events.close();
    if (gen === detail.gen && !["done", "failed", "cancelled"].includes(detail.state)) pollDetail(gen, created.links.self);
  };
}

async function pollDetail(gen, url) {
  while (gen === detail.gen) {
    try {
      const s = await api(url);
      showDetail(s);
      if (["done", "failed", "cancelled"].includes(s.state)) return;
    } catch (_) { /* keep trying */ }
    await sleep(1000);
  }
}

function setStatus(html, bad = false) {
  const el = $("detail-status");
  el.textContent = "";
  if (bad) el.append(Object.assign(document.createElement("span"), { className: "bad", textContent: html }));
  else el.innerHTML = html;
}

function setDownload(href) {
  const a = $("download");
  if (href) { a.href = href; a.setAttribute("aria-disabled", "false"); }
  else { a.removeAttribute("href"); a.setAttribute("aria-disabled", "true"); }
}

const fmt = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : String(v));

function showDetail(s) {
  detail.state = s.state;
  const img = $("detail-img");
  $("detail-bar").style.width = `${Math.round(s.progress * 100)}%`;
  const act = s.activation !== null ? ` · activation <b>${s.activation.toFixed(3)}</b>` : "";
  if (s.state === "queued") {
    setStatus(`Queued${s.queue_position ? ` (position ${s.queue_position})` : ""} · ${s.size} px, ${s.method}`);
  } else if (s.state === "running") {
    setStatus(`Rendering · step <b>${s.step}</b>${s.progress ? ` (${Math.round(s.progress * 100)}%)` : ""}${act}`);
    if (s.step !== detail.step && (img.complete || !img.getAttribute("src"))) {
      detail.step = s.step;
      img.src = `${s.links.image}?step=${s.step}`;
    }
  } else if (s.state === "done") {
    setStatus(`Done · ${s.size} px, ${s.method}, ${s.steps} steps, seed ${s.seed}${act}`);
    img.src = s.links.image;
    setDownload(s.links.download);
    showRecipe(s.recipe || {});
  } else if (s.state === "failed") {
    detailFailed(s.error || "The render failed.", s.fault === "server");
    return;
  } else {
    setStatus(`This render was ${s.state}.`, true);
  }
  img.dataset.state = s.state;
}

function detailFailed(message, byServer) {
  detail.state = "failed";
  $("detail-img").dataset.state = "failed";
  if (byServer && detail.retries < 1) {   // the server's own fault: once more by itself
    detail.retries += 1;
    setStatus("The server failed on this render; trying once more…");
    openDetail(true);
    return;
  }
  setStatus(message, true);
  const retry = Object.assign(document.createElement("button"), {
    type: "button", className: "button ghost retry", textContent: "Retry" });
  retry.addEventListener("click", () => openDetail(true));
  $("detail-status").append(" ", retry);
}

function showRecipe(recipe) {
  const rows = [];
  const add = (k, v) => {
    rows.push(Object.assign(document.createElement("dt"), { textContent: k }));
    rows.push(Object.assign(document.createElement("dd"), { textContent: v }));
  };
  for (const [k, v] of Object.entries(recipe)) {
    if (v === null || v === undefined) continue;
    if (typeof v === "object") {
      for (const [k2, v2] of Object.entries(v)) add(`${k}.${k2}`, typeof v2 === "object" ? JSON.stringify(v2) : fmt(v2));
    } else add(k, fmt(v));
  }
  $("recipe").replaceChildren(...rows);
}

function wireDetail() {
  const step = (d) => { if (S.unit !== null) selectUnit(Math.min(S.info.channels - 1, Math.max(0, S.unit + d)), null, null, false); };
  $("prev").addEventListener("click", () => step(-1));
  $("next").addEventListener("click", () => step(1));
  $("close").addEventListener("click", () => closeDetail());
  $("copy-link").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(location.href); toast("Link copied."); }
    catch (_) { toast(`Link: ${location.href}`); }
  });
  $("neuron").addEventListener("submit", (e) => {
    e.preventDefault();
    const x = intIn($("nx").value, 0, S.info.width - 1);
    const y = intIn($("ny").value, 0, S.info.height - 1);
    if ($("nx").value === "" && $("ny").value === "") { selectUnit(S.unit, null, null, true); return; }
    if (x === null || y === null) {
      toast(`Give x 0..${S.info.width - 1} and y 0..${S.info.height - 1} (or leave both empty for the whole channel).`);
      return;
    }
    selectUnit(S.unit, x, y, true);
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea") || e.altKey || e.ctrlKey || e.metaKey) return;
    const n = S.info ? S.info.channels : 0;
    const cur = S.unit ?? -1;
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: gridColumns(), ArrowUp: -gridColumns() };
    if (e.key in moves && n) {
      e.preventDefault();
      const next = cur < 0 ? 0 : Math.min(n - 1, Math.max(0, cur + moves[e.key]));
      if (next !== S.unit) selectUnit(next, null, null, false);
    } else if (e.key === "Home" && n) { e.preventDefault(); selectUnit(0, null, null, false); }
    else if (e.key === "End" && n) { e.preventDefault(); selectUnit(n - 1, null, null, false); }
    else if (e.key === "Escape") closeDetail();
  });
}

// -- start -----------------------------------------------------------------------------------------------
async function start() {
  try {
    [S.config, S.models] = await Promise.all([api("/api/config"), api("/api/models")]);
  } catch (err) {
    toast(`Cannot reach the imagemachines server: ${err.message}`);
    return;
  }
  wireControls();
  wireDetail();
  if (typeof collectionsReady !== "undefined") await collectionsReady;
  await applyHash();
  if (!readHash().view) writeHash(false);
  window.addEventListener("popstate", applyHash);
  window.addEventListener("hashchange", applyHash);
  showQueue();
  setInterval(() => { if (!document.hidden) showQueue(); }, 2000);
}

start();
