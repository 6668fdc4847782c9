// lenet5 demo page: draw on #pad, send the ink to POST /api/classify (at most ~10 requests/s,
// one at a time), and paint the answer: digit, verdict, distance bars and every layer's maps.
"use strict";

const PAD_CSS = 280;          // drawing area, CSS pixels
const SEND = 112;             // the drawing is sent as SEND x SEND ink (the server crops and fits it to 20 px)
const STROKE = 20;            // pen width in CSS pixels (MNIST strokes are ~1/10 of the digit's height)
const MIN_INTERVAL = 100;     // ms between requests while drawing: <= 10 per second
const RANGE = 1.7159;         // tanh units lie in +-1.7159: one fixed colour scale for every map

const $ = (id) => document.getElementById(id);
const app = $("app"), pad = $("pad"), ctx = pad.getContext("2d");
let info = null;              // GET /api/info
let loaded = null;            // the digit from /api/digit while the user has not drawn over it
let dirty = false, inFlight = false, lastSent = 0, timer = null, answers = 0;

// ------------------------------------------------------------------ colours
// diverging: negative -> blue, 0 -> paper, positive -> warm brown/orange (RdBu-like, colour-blind safe)
const STOPS = [[-1, [33, 102, 172]], [-0.5, [103, 169, 207]], [0, [247, 247, 247]],
               [0.5, [244, 165, 130]], [1, [178, 24, 43]]];
function diverging(v) {
  const t = Math.max(-1, Math.min(1, v / RANGE));
  for (let i = 1; i < STOPS.length; i++) {
    if (t <= STOPS[i][0]) {
      const [t0, c0] = STOPS[i - 1], [t1, c1] = STOPS[i], f = (t - t0) / (t1 - t0);
      return [0, 1, 2].map((k) => Math.round(c0[k] + f * (c1[k] - c0[k])));
    }
  }
  return STOPS[STOPS.length - 1][1];
}
// the input as ink on paper: background -0.1 -> white, ink 1.175 -> near black
// the prototypes' 7x12 bitmaps as ink on paper: +1 -> ink, -1 -> paper
function bitmap(v) { return v > 0 ? [40, 40, 40] : [250, 249, 246]; }
function paper(v) {
  const g = Math.round(255 - 235 * Math.max(0, Math.min(1, (v + 0.1) / 1.275)));
  return [g, g, g];
}

// ------------------------------------------------------------------ small canvases
function makeMap(parent, w, h, scale, title) {
  const c = document.createElement("canvas");
  c.width = w; c.height = h;
  c.style.width = w * scale + "px"; c.style.height = h * scale + "px";
  c.className = "map";
  if (title) c.title = title;
  parent.appendChild(c);
  return c;
}
function paint(canvas, values, colour) {   // values: flat, row-major, canvas.width * canvas.height
  const g = canvas.getContext("2d"), img = g.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < values.length; i++) {
    const [r, gr, b] = colour(values[i]);
    img.data[4 * i] = r; img.data[4 * i + 1] = gr; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  g.putImageData(img, 0, 0);
}
const flat = (a) => (Array.isArray(a[0]) ? a.flat(Infinity) : a);

// every layer's canvases, made once: name -> [canvas per map]
const LAYOUT = { input: [1, 32, 32, 4], C1: [6, 28, 28, 4], S2: [6, 14, 14, 6],
                 C3: [16, 10, 10, 6.4], S4: [16, 5, 5, 8] };
const maps = {};
for (const [name, [n, h, w, scale]] of Object.entries(LAYOUT)) {
  maps[name] = [];
  for (let i = 0; i < n; i++) maps[name].push(makeMap($("map-" + name), w, h, scale, `${name} map ${i + 1}`));
}
maps.C5 = [makeMap($("map-C5"), 120, 1, 6, "C5: 120 units")];
maps.C5[0].style.height = "30px";
const f6box = $("map-F6");
const f6fig = (label) => { const f = document.createElement("figure"); f6box.appendChild(f);
  const cap = document.createElement("figcaption"); cap.textContent = label; return [f, cap]; };
const [f6a, f6cap] = f6fig("F6 output");
maps.F6 = [makeMap(f6a, 7, 12, 9, "F6: 84 units as 7x12")]; f6a.appendChild(f6cap);
const vs = document.createElement("div"); vs.className = "vs"; vs.textContent = "vs"; f6box.appendChild(vs);
const [f6b, protoCap] = f6fig("prototype");
maps.proto = [makeMap(f6b, 7, 12, 9, "the winning class's RBF prototype")]; f6b.appendChild(protoCap);
const f6note = document.createElement("p"); f6note.className = "f6note"; f6box.appendChild(f6note);

function blankMaps() {
  for (const list of Object.values(maps)) for (const c of list) {
    const g = c.getContext("2d"); g.fillStyle = "#ecebe6"; g.fillRect(0, 0, c.width, c.height);
  }
}
blankMaps();

// colour legend
(() => { const l = $("legend"), v = []; for (let i = 0; i < 256; i++) v.push((i / 255 * 2 - 1) * RANGE); paint(l, v, diverging); })();

// ------------------------------------------------------------------ distance bars
const bars = [];
for (let d = 0; d < 10; d++) {
  const row = document.createElement("div"); row.className = "bar-row";
  const lab = document.createElement("span"); lab.className = "bar-digit"; lab.textContent = d;
  const proto = document.createElement("canvas"); proto.width = 7; proto.height = 12; proto.className = "proto-icon";
  const track = document.createElement("div"); track.className = "bar-track";
  const bar = document.createElement("div"); bar.className = "bar"; track.appendChild(bar);
  const val = document.createElement("span"); val.className = "bar-value"; val.textContent = "";
  row.append(lab, proto, track, val); $("bars").appendChild(row);
  bars.push({ row, bar, val, proto });
}

// ------------------------------------------------------------------ drawing pad
function sizePad() {
  const dpr = window.devicePixelRatio || 1;
  pad.width = Math.round(PAD_CSS * dpr); pad.height = Math.round(PAD_CSS * dpr);
  pad.style.width = PAD_CSS + "px"; pad.style.height = PAD_CSS + "px";
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.lineWidth = STROKE; ctx.strokeStyle = "#141414";
  ctx.fillStyle = "#141414";
}
sizePad();

let last = null, hasInk = false;
function at(e) { const r = pad.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
function dot([x, y]) { ctx.beginPath(); ctx.arc(x, y, STROKE / 2, 0, 2 * Math.PI); ctx.fill(); }
function line([x0, y0], [x1, y1]) { ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke(); }

pad.addEventListener("pointerdown", (e) => {
  if (e.button !== 0 && e.pointerType === "mouse") return;
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  last = at(e); dot(last);
  inked(null);
});
pad.addEventListener("pointermove", (e) => {
  if (!last) return;
  e.preventDefault();
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of (events.length ? events : [e])) { const p = at(ev); line(last, p); last = p; }
  inked(null);
});
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  pad.addEventListener(type, () => { if (last) { last = null; schedule(); } });
}

function inked(digit) {       // something new is on the pad: a stroke (digit = null) or a loaded digit
  loaded = digit; hasInk = true;
  $("hint").style.display = "none";
  $("source").textContent = digit
    ? `${digit.source} #${digit.index} · label ${digit.label}` : "your drawing";
  $("source").dataset.label = digit ? digit.label : "";
  schedule();
}

function clearPad() {
  ctx.clearRect(0, 0, PAD_CSS, PAD_CSS);
  loaded = null; hasInk = false; dirty = false;
  $("hint").style.display = "";
  $("source").innerHTML = "&nbsp;"; $("source").dataset.label = "";
  showEmpty();
}
$("clear").addEventListener("click", clearPad);

// a digit from the server, drawn on the pad as ink (so the user can draw over it)
$("random").addEventListener("click", async () => {
  try {
    const r = await fetch("/api/digit");
    const digit = await r.json();
    if (!r.ok) throw new Error(digit.error || r.statusText);
    clearPad();
    const small = document.createElement("canvas"); small.width = digit.width; small.height = digit.height;
    const sctx = small.getContext("2d"), img = sctx.createImageData(digit.width, digit.height);
    digit.pixels.forEach((v, i) => { img.data.set([20, 20, 20, Math.round(255 * v)], 4 * i); });
    sctx.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true; ctx.imageSmoothingQuality = "high";
    ctx.drawImage(small, 0, 0, PAD_CSS, PAD_CSS);
    inked(digit);
  } catch (err) { status(`could not load a digit: ${err.message}`, true); }
});

// the ink to send: the loaded digit as it came, else the pad's alpha channel downsampled to SEND x SEND
function currentInk() {
  if (loaded) return { pixels: loaded.pixels, width: loaded.width, height: loaded.height };
  const small = document.createElement("canvas"); small.width = SEND; small.height = SEND;
  const sctx = small.getContext("2d");
  sctx.imageSmoothingEnabled = true; sctx.imageSmoothingQuality = "high";
  sctx.drawImage(pad, 0, 0, SEND, SEND);
  const a = sctx.getImageData(0, 0, SEND, SEND).data, pixels = new Array(SEND * SEND);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.round(a[4 * i + 3] / 0.255) / 1000;
  return { pixels, width: SEND, height: SEND };
}

// ------------------------------------------------------------------ requests, throttled
function schedule() {
  dirty = true;
  if (inFlight || timer) return;
  const wait = Math.max(0, lastSent + MIN_INTERVAL - performance.now());
  timer = setTimeout(() => { timer = null; send(); }, wait);
}

async function send() {
  if (!dirty || !hasInk || inFlight) return;
  dirty = false; inFlight = true;
  app.dataset.state = "waiting";
  const body = JSON.stringify(currentInk());
  const started = lastSent = performance.now();
  try {
    const r = await fetch("/api/classify", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const answer = await r.json();
    if (!hasInk) { /* cleared while waiting */ }
    else if (r.ok) { show(answer); status(`answered in ${Math.round(performance.now() - started)} ms`); }
    else if (r.status === 422) { showEmpty(); status(answer.error); }
    else { app.dataset.state = "error"; status(`error ${r.status}: ${answer.error}`, true); }
  } catch (err) {
    app.dataset.state = "error"; status(`no answer from the server: ${err.message}`, true);
  } finally {
    inFlight = false;
    if (dirty) schedule();
  }
}

function status(text, bad) { $("status").textContent = text; $("status").className = bad ? "bad" : ""; }

// ------------------------------------------------------------------ painting an answer
function show(a) {
  const d = a.digit;
  $("digit").textContent = d;
  $("digit").className = "digit" + (a.rejected ? " rejected" : "");
  const verdict = $("verdict");
  if (a.rejected === null) { verdict.textContent = "no rejection threshold"; verdict.className = "badge idle"; }
  else if (a.rejected) { verdict.textContent = "would be rejected"; verdict.className = "badge reject"; }
  else { verdict.textContent = "confident"; verdict.className = "badge accept"; }
  $("gap").textContent = a.threshold_gap === null
    ? `gap to the runner-up ${a.gap.toFixed(2)}`
    : `gap to the runner-up ${a.gap.toFixed(2)} ${a.rejected ? "<" : "≥"} ${a.threshold_gap.toFixed(2)} threshold`;

  const top = Math.max(...a.distances);
  a.distances.forEach((v, i) => {
    const b = bars[i];
    b.bar.style.width = (100 * v / top).toFixed(1) + "%";
    b.val.textContent = v.toFixed(v < 10 ? 2 : 1);
    b.row.dataset.distance = v;
    b.row.classList.toggle("best", i === d);
  });

  paint(maps.input[0], flat(a.input), paper);
  for (const name of ["C1", "S2", "C3", "S4"]) a.layers[name].forEach((m, i) => paint(maps[name][i], flat(m), diverging));
  paint(maps.C5[0], a.layers.C5, diverging);
  paint(maps.F6[0], a.layers.F6, diverging);
  paint(maps.proto[0], a.prototype, diverging);
  protoCap.textContent = `prototype of ${d}`;
  f6note.innerHTML = `distance = Σ (F6 − prototype)² = <b>${a.distances[d].toFixed(2)}</b>`;
  answers += 1; app.dataset.answers = answers; app.dataset.state = "ready";
}

function showEmpty() {
  $("digit").textContent = "·"; $("digit").className = "digit";
  $("verdict").textContent = "waiting for ink"; $("verdict").className = "badge idle";
  $("gap").innerHTML = "&nbsp;";
  for (const b of bars) { b.bar.style.width = "0"; b.val.textContent = ""; b.row.classList.remove("best"); delete b.row.dataset.distance; }
  blankMaps(); f6note.textContent = ""; protoCap.textContent = "prototype";
  app.dataset.state = "empty";
}

// ------------------------------------------------------------------ start
fetch("/api/info").then((r) => r.json()).then((i) => {
  info = i;
  $("checkpoint").textContent = i.checkpoint + (i.threshold
    ? ` · rejects below a top-2 gap of ${i.threshold.gap.toFixed(2)} (${i.threshold.reject_pct.toFixed(2)}% of the MNIST test set, leaving ${i.threshold.accepted_error_pct.toFixed(2)}% error)`
    : " · no rejection threshold known");
  i.prototypes.forEach((p, d) => paint(bars[d].proto, p, bitmap));
}).catch((err) => status(`no answer from the server: ${err.message}`, true));
