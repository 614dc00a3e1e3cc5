// The playground page: sends commands (JSON POSTs) and draws the frames the server streams (EventSource).
// Training happens in the server's Python process; this file only draws. Text from the server is set with
// textContent, never as HTML.
"use strict";
const $ = id => document.getElementById(id);
const FIELDS = ["data", "loss", "reg", "weight", "lr_g", "lr_d", "d_steps", "batch", "hidden", "layers", "z_dim", "seed"];
const state = {frame: null, rows: [], modes: [], drawn: [], running: false};
window.gf = state;                       // for tests and the curious

function showError(msg) { $("error").textContent = msg || ""; }

async function post(path, body) {
  const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify(body || {})});
  const data = await r.json().catch(() => ({error: `HTTP ${r.status}`}));
  if (!r.ok) { showError(data.error || `HTTP ${r.status}`); return null; }
  showError("");
  fill(data.settings);
  setRunning(data.running);
  return data;
}

function fill(s) {
  if (!s) return;
  for (const k of FIELDS) if (document.activeElement !== $(k)) $(k).value = s[k];
  $("drawhelp").hidden = $("data").value !== "drawn";
  $("points").classList.toggle("draw", $("data").value === "drawn");
}

function setRunning(on) {
  state.running = on;
  $("start").textContent = on ? "Pause" : "Start";
  $("start").classList.toggle("running", on);
  $("state").textContent = on ? "training" : "paused";
}

function value(k) {
  const el = $(k);
  return el.tagName === "SELECT" ? el.value : Number(el.value);
}

async function build() {
  const r = await fetch("/api/playground");
  const s = await r.json();
  for (const k of ["data", "loss", "reg"]) {
    for (const c of s.rules[k].allowed) {
      const o = document.createElement("option");
      o.value = c; o.textContent = c; $(k).appendChild(o);
    }
  }
  for (const k of FIELDS) {
    const rule = s.rules[k];
    if (rule.kind !== "choice") { $(k).min = rule.allowed[0]; $(k).max = rule.allowed[1]; }
    $(k).addEventListener("change", () => {
      if (k === "data" && value("data") === "drawn") { fill({...state.frame.settings, data: "drawn"}); return; }
      post("/api/playground/settings", {[k]: value(k)});
    });
  }
  fill(s.settings); setRunning(s.running);
  $("start").onclick = () => post(state.running ? "/api/playground/pause" : "/api/playground/start");
  $("step").onclick = () => post("/api/playground/step", {steps: 1});
  $("reset").onclick = () => post("/api/playground/reset");
  $("usepoints").onclick = () => post("/api/playground/points", {points: state.drawn});
  $("clearpoints").onclick = () => { state.drawn = []; draw(); };
  for (const k of ["show_heat", "show_real", "show_fake", "show_arrows"]) $(k).onchange = draw;
  drawing();
  const es = new EventSource("/api/playground/stream");
  es.addEventListener("frame", e => receive(JSON.parse(e.data)));
  es.onerror = () => $("state").textContent = "connection lost; retrying";
}

function receive(f) {
  const h = f.history;
  if (h.full) { state.rows = []; state.modes = []; }
  state.rows.push(...h.rows); state.modes.push(...h.modes);
  if (!state.frame || state.frame.version !== f.version) fill(f.settings);
  state.frame = f;
  setRunning(f.running);
  if (f.error) showError(f.error);
  $("stepno").textContent = f.step;
  $("modes").textContent = `${f.modes.covered} of ${f.modes.of}`;
  $("modes").dataset.covered = f.modes.covered;
  $("hq").textContent = `${f.modes.hq}%`;
  $("kl").textContent = f.modes.kl;
  draw();
  charts();
}

// ---- the field: world [-lim, lim]^2 to canvas pixels
function toPx(p, lim, W) { return [(p[0] + lim) / (2 * lim) * W, (lim - p[1]) / (2 * lim) * W]; }
function toWorld(x, y, lim, W) { return [x / W * 2 * lim - lim, lim - y / W * 2 * lim]; }

function heatColor(v) {              // 0: D says fake (purple), 1: D says real (green), 0.5: white
  const a = Math.abs(v - 0.5) * 2 * 0.7, tint = v >= 0.5 ? [46, 160, 67] : [142, 36, 170];
  return tint.map(c => Math.round(255 * (1 - a) + c * a));
}

function draw() {
  const f = state.frame;
  const heat = $("heat"), hctx = heat.getContext("2d"), W = heat.width;
  const pts = $("points"), ctx = pts.getContext("2d");
  hctx.fillStyle = "#fff"; hctx.fillRect(0, 0, W, W);
  ctx.clearRect(0, 0, W, W);
  if (!f) return;
  const lim = f.lim;
  if ($("show_heat").checked) {
    const n = f.heat.n, img = new ImageData(n, n);
    f.heat.cells.forEach((v, i) => { const c = heatColor(v / 255); img.data.set([c[0], c[1], c[2], 255], 4 * i); });
    const off = document.createElement("canvas"); off.width = n; off.height = n;
    off.getContext("2d").putImageData(img, 0, 0);
    hctx.imageSmoothingEnabled = true; hctx.drawImage(off, 0, 0, W, W);
    $("heatrange").textContent = f.heat.probability ? "D(x) from 0 (purple) to 1 (green)"
      : `D's score from ${f.heat.lo.toPrecision(3)} (purple) to ${f.heat.hi.toPrecision(3)} (green)`;
  } else $("heatrange").textContent = "";
  const dot = (p, color, r) => { const [x, y] = toPx(p, lim, W); ctx.fillStyle = color;
    ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill(); };
  if ($("show_real").checked) f.real.forEach(p => dot(p, "rgba(27,94,32,0.75)", 2.2));
  if ($("show_fake").checked) f.fake.forEach(p => dot(p, "rgba(106,27,154,0.8)", 2.2));
  if ($("show_arrows").checked) {
    let most = 1e-12;
    for (const a of f.arrows) most = Math.max(most, Math.hypot(a[0], a[1]));
    const k = 0.08 * 2 * lim / most;
    ctx.strokeStyle = "rgba(40,40,40,0.55)"; ctx.lineWidth = 1;
    f.arrows.forEach((a, i) => {
      const p = f.fake[i], [x, y] = toPx(p, lim, W), [x2, y2] = toPx([p[0] + k * a[0], p[1] + k * a[1]], lim, W);
      ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x2, y2); ctx.stroke();
    });
  }
  if (value("data") === "drawn") state.drawn.forEach(p => dot(p, "#ef6c00", 3));
}

function drawing() {
  const c = $("points");
  let down = false, last = null;
  const add = e => {
    if (value("data") !== "drawn" || !state.frame) return;
    const r = c.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
    if (last && Math.hypot(x - last[0], y - last[1]) < 6) return;
    last = [x, y];
    const p = toWorld(x, y, state.frame.lim, c.width);
    if (Math.abs(p[0]) <= 3 && Math.abs(p[1]) <= 3 && state.drawn.length < 2000) {
      state.drawn.push([Math.round(p[0] * 1000) / 1000, Math.round(p[1] * 1000) / 1000]); draw();
    }
  };
  c.addEventListener("mousedown", e => { down = true; last = null; add(e); });
  c.addEventListener("mousemove", e => { if (down) add(e); });
  window.addEventListener("mouseup", () => { down = false; });
}

function charts() {
  const col = i => state.rows.map(r => r[i]), xs = col(0);
  lines($("chart_loss"), [{name: "D loss", color: "#1f77b4", xs, ys: col(1)},
                          {name: "G loss", color: "#d62728", xs, ys: col(2)}]);
  const prob = state.frame && state.frame.heat.probability;
  lines($("chart_d"), [{name: prob ? "D(x)" : "D(x) score", color: "#2e7d32", xs, ys: col(3)},
                       {name: prob ? "D(G(z))" : "D(G(z)) score", color: "#7b1fa2", xs, ys: col(4)}],
        prob ? {ymin: 0, ymax: 1} : {});
  lines($("chart_modes"), [{name: "modes covered", color: "#ff7f0e", xs: state.modes.map(m => m[0]),
                            ys: state.modes.map(m => m[1])}], {ymin: 0});
}

build();
