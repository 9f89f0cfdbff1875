// imagemachines web interface, accentuation: the open painting (of the collection, or an upload) changed just
// enough that the selected unit fires strongly, beside the painting, growing live like a render.
// Plain JavaScript; uses app.js's and collection.js's globals (S, C, api, $, el, go, toast, cancelRender).
// Deep link: the painting view's hash plus acc=STRENGTH (e.g. acc=1) shows (and, if needed, makes) it.
"use strict";

const A = { config: null, id: null, key: null, events: null, gen: 0, state: null, step: -1, open: false };
const STRENGTH_NAMES = { 0.5: "strong", 1: "default", 2: "faint" };

function accentPainting() {
  // The painting the view shows, as the API names it; null when none.
  if (C.upload) return { upload: C.upload };
  if (C.image !== null && C.index) return { index: C.index, image: C.image };
  return null;
}

function accentRequest() {
  const painting = accentPainting();
  if (!painting || S.unit === null || C.acc === null) return null;
  const unit = S.x !== null ? { channel: S.unit, x: S.x, y: S.y } : S.unit;
  return { model: S.model, layer: S.layer, unit, painting, strength: Number(C.acc), seed: S.seed };
}

function accentUnitName() {
  const label = S.info && S.info.labels ? S.info.labels[S.unit] : null;
  return label ? `${S.layer} · ${label}` : `${S.layer}:${S.unit}${S.x !== null ? `@${S.x},${S.y}` : ""}`;
}

// Called by collection.js whenever the painting view is drawn (painting, unit or hash changed).
function accentShow() {
  const box = $("acc");
  if (!box) return;
  const open = !$("painting").hidden && accentPainting() !== null && S.unit !== null;
  const wasOpen = A.open;
  A.open = open;
  box.hidden = !open;
  if (!open) {
    accentStop();
    // closed with its painting; a deep link whose painting is not shown yet (still loading) keeps its acc=
    if (wasOpen && $("painting").hidden && C.acc !== null) { C.acc = null; writeHash(false); }
    return;
  }
  $("acc-go").textContent = `Accentuate ${accentUnitName()}`;
  const strengths = (A.config && A.config.strengths) || [0.5, 1, 2];
  const current = C.acc !== null ? Number(C.acc) : (A.config ? A.config.strength : 1);
  const sel = $("acc-strength");
  const values = [...new Set([...strengths, current])].sort((a, b) => a - b);
  sel.replaceChildren(...values.map((v) => new Option(`${v}${STRENGTH_NAMES[v] ? ` (${STRENGTH_NAMES[v]})` : ""}`,
    String(v), false, v === current)));
  const req = accentRequest();
  const key = req ? JSON.stringify(req) : null;
  if (key === A.key) return;
  accentStop();
  A.key = key;
  $("acc-fig").hidden = !req;
  $("pv-img").classList.toggle("acc-paired", Boolean(req));
  if (req) accentStart(req);
}

function accentStop() {
  if (A.events) A.events.close();
  A.events = null;
  if (A.id && !["done", "failed", "cancelled"].includes(A.state)) cancelRender(A.id);   // nobody looks at it now
  A.id = null; A.key = null; A.state = null; A.gen++;
  const fig = $("acc-fig");
  if (fig) fig.hidden = true;
  const img = $("pv-img");
  if (img) img.classList.remove("acc-paired");
}

async function accentStart(req) {
  const gen = ++A.gen;
  const img = $("acc-img");
  img.removeAttribute("src");
  img.dataset.state = "queued";
  img.alt = `The painting accentuated for ${accentUnitName()}`;
  $("acc-bar").style.width = "0";
  $("acc-download").hidden = true;
  $("acc-cancel").hidden = false;
  accentStatus("Asking the server…");
  A.step = -1;
  let created;
  for (;;) {
    try {
      created = await api("/api/accentuations", { method: "POST", body: JSON.stringify(req) });
      break;
    } catch (err) {
      if (gen !== A.gen) return;
      if (err.status !== 429) { accentStatus(err.message, true); img.dataset.state = "failed"; $("acc-cancel").hidden = true; return; }
      accentStatus(`The server is busy; trying again in ${err.retryAfter} s…`);
      await sleep(err.retryAfter * 1000);
      if (gen !== A.gen) return;
    }
  }
  if (gen !== A.gen) return;
  A.id = created.id;
  A.state = created.state;
  if (created.state === "done") { accentUpdate(await api(created.links.self)); return; }
  const events = new EventSource(created.links.events);
  A.events = events;
  const onEvent = (e) => { if (gen === A.gen) accentUpdate(JSON.parse(e.data)); };
  for (const name of ["progress", "done", "failed", "cancelled"]) events.addEventListener(name, onEvent);
  for (const name of ["done", "failed", "cancelled"]) events.addEventListener(name, () => events.close());
  events.onerror = async () => {   // connection lost: poll instead
    events.close();
    while (gen === A.gen && !["done", "failed", "cancelled"].includes(A.state)) {
      try { accentUpdate(await api(created.links.self)); } catch (_) { /* keep trying */ }
      await sleep(1000);
    }
  };
}

function accentStatus(text, bad = false) {
  const out = $("acc-status");
  out.className = bad ? "acc-status bad" : "acc-status";
  out.textContent = text;
}

function accentUpdate(s) {
  A.state = s.state;
  const img = $("acc-img");
  img.dataset.state = s.state;
  $("acc-bar").style.width = `${Math.round(s.progress * 100)}%`;
  if (s.state === "queued") {
    accentStatus(`Queued${s.queue_position ? ` (position ${s.queue_position})` : ""}`);
  } else if (s.state === "running") {
    const act = s.activation !== null ? ` · unit ${s.activation.toFixed(3)}` : "";
    accentStatus(`Accentuating · step ${s.step} of ${s.steps}${act}`);
    if (s.step !== A.step && (img.complete || !img.getAttribute("src"))) {
      A.step = s.step;
      img.src = `${s.links.image}?step=${s.step}`;
    }
  } else if (s.state === "done") {
    const n = (s.recipe && s.recipe.accentuation) || {};
    const gain = n.gain ? ` (×${n.gain.toFixed(1)})` : "";
    const pct = n.percentile_before !== undefined ? `, ${n.percentile_before.toFixed(0)} → ${n.percentile_after.toFixed(0)}th pct` : "";
    const dist = n.activation_distance !== undefined ? ` · distance ${n.activation_distance.toFixed(2)} at ${n.reg_layer}` : "";
    accentStatus(`Unit ${(n.before ?? 0).toFixed(2)} → ${(n.after ?? s.activation ?? 0).toFixed(2)}${gain}${pct}${dist} · strength ${n.strength}`);
    img.src = s.links.image;
    const a = $("acc-download");
    a.href = s.links.download;
    a.hidden = false;
    $("acc-cancel").hidden = true;
  } else {
    accentStatus(s.error || `This accentuation was ${s.state}.`, true);
    $("acc-cancel").hidden = true;
  }
}

function accentButton(imageId) {
  // A small button for an example card of the unit panel: open the painting with its accentuation.
  const b = el("button", { className: "acc-card-btn", type: "button", textContent: "accentuate",
    title: "Open this painting accentuated for the unit: changed just enough that the unit fires strongly" });
  b.addEventListener("click", (e) => {
    e.stopPropagation();
    go({ image: imageId, upload: null, index: C.index, acc: String((A.config && A.config.strength) || 1) });
  });
  return b;
}

const ACCENT_HTML = `
  <div id="acc" class="acc" hidden>
    <button id="acc-go" class="button" type="button"
      title="Change the painting just enough that this unit fires strongly, held close to the painting"></button>
    <label class="acc-label">Strength <select id="acc-strength" aria-label="Strength: how hard the painting holds"></select></label>
    <button id="acc-cancel" class="button ghost" type="button" hidden>Cancel</button>
    <a id="acc-download" class="button ghost" download hidden>Download PNG</a>
    <span id="acc-status" class="acc-status" aria-live="polite"></span>
  </div>`;

async function startAccentuate() {
  await collectionsReady;
  const stage = document.querySelector("#painting .pv-stage");
  const row = el("div", { className: "acc-row" });
  const pvImg = $("pv-img");
  pvImg.before(row);
  row.append(pvImg);
  row.insertAdjacentHTML("beforeend", `
    <figure id="acc-fig" class="acc-fig" hidden>
      <img id="acc-img" alt="" data-state="">
      <div class="progress"><div id="acc-bar"></div></div>
    </figure>`);
  stage.insertAdjacentHTML("beforeend", ACCENT_HTML);
  $("acc-go").addEventListener("click", () => go({ acc: $("acc-strength").value }));
  $("acc-strength").addEventListener("change", (e) => { if (C.acc !== null) go({ acc: e.target.value }); });
  $("acc-cancel").addEventListener("click", () => { if (A.id) cancelRender(A.id); go({ acc: null }); });
  try { A.config = await api("/api/accentuations/config"); } catch (_) { A.config = null; }
  accentShow();
}

const accentuateReady = startAccentuate();
