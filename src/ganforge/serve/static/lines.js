// Line charts on a canvas: lines(canvas, [{name, color, xs, ys}], {ymin, ymax}). Text is drawn with fillText,
// never parsed as HTML.
"use strict";
function niceStep(span, most) {
  const raw = span / Math.max(1, most), p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function fmt(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return String(Math.round(v * 1000) / 1000);
}
function lines(canvas, series, opts) {
  opts = opts || {};
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const L = 46, R = 8, T = 8, B = 30;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) for (let i = 0; i < s.xs.length; i++) {
    const y = s.ys[i];
    if (!Number.isFinite(y)) continue;
    x0 = Math.min(x0, s.xs[i]); x1 = Math.max(x1, s.xs[i]); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  if (opts.ymin !== undefined) y0 = Math.min(y0, opts.ymin);
  if (opts.ymax !== undefined) y1 = Math.max(y1, opts.ymax);
  ctx.font = "11px sans-serif"; ctx.fillStyle = "#666";
  if (!Number.isFinite(x0)) { ctx.fillText("no data yet", W / 2 - 30, H / 2); return; }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const px = x => L + (x - x0) / (x1 - x0) * (W - L - R), py = y => T + (y1 - y) / (y1 - y0) * (H - T - B);
  ctx.strokeStyle = "#e5e5e5"; ctx.lineWidth = 1;
  const ys = niceStep(y1 - y0, 4);
  for (let v = Math.ceil(y0 / ys) * ys; v <= y1 + 1e-9; v += ys) {
    ctx.beginPath(); ctx.moveTo(L, py(v)); ctx.lineTo(W - R, py(v)); ctx.stroke();
    ctx.fillText(fmt(v), 2, py(v) + 4);
  }
  const xsStep = niceStep(x1 - x0, 4);
  for (let v = Math.ceil(x0 / xsStep) * xsStep; v <= x1 + 1e-9; v += xsStep) ctx.fillText(fmt(v), px(v) - 10, H - B + 13);
  ctx.fillText(opts.xlabel || "step", W - R - 28, H - 3);
  let lx = L;
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = 1.5; ctx.beginPath();
    let pen = false;
    for (let i = 0; i < s.xs.length; i++) {
      if (!Number.isFinite(s.ys[i])) { pen = false; continue; }
      const X = px(s.xs[i]), Y = py(s.ys[i]);
      if (pen) ctx.lineTo(X, Y); else ctx.moveTo(X, Y);
      pen = true;
    }
    ctx.stroke();
    ctx.fillStyle = s.color; ctx.fillRect(lx, H - 11, 10, 3); ctx.fillStyle = "#333";
    ctx.fillText(s.name, lx + 13, H - 6); lx += 18 + ctx.measureText(s.name).width + 10;
  }
}
