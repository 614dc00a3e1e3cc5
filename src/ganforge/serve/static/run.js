// The live view of a run folder: the server follows metrics.jsonl and the sample grids and streams updates.
// Charts, findings and the table arrive as HTML the server built from report/ with every text escaped;
// names and numbers are set with textContent.
"use strict";
const $ = id => document.getElementById(id);
const name = decodeURIComponent(location.pathname.split("/")[2] || "");
$("name").textContent = name;
document.title = `${name}: ganforge run`;

function figure(step, url, big) {
  const f = document.createElement("figure"), img = document.createElement("img"), c = document.createElement("figcaption");
  img.className = "px"; img.src = url; img.alt = `samples at step ${step}`;
  if (big) img.style.width = "320px";
  c.textContent = `step ${step}`;
  f.append(img, c);
  return f;
}

const es = new EventSource(`/api/runs/${encodeURIComponent(name)}/stream`);
es.addEventListener("config", e => { $("config").textContent = JSON.parse(e.data).config; });
es.addEventListener("update", e => {
  const u = JSON.parse(e.data);
  $("status").textContent = `step ${u.step} of ${u.steps ?? "?"}, ${u.rows} log lines, ${u.time ?? "?"} s of training` +
    (u.skipped ? `, ${u.skipped} damaged log lines skipped` : "") + ` (updated ${new Date().toLocaleTimeString()})`;
  $("charts").innerHTML = u.charts.join("");
  $("findings").innerHTML = u.findings;
  $("table").innerHTML = u.table;
  $("latest").replaceChildren(...(u.latest ? [figure(u.latest[0], u.latest[1], true)] : []));
  $("samples").replaceChildren(...u.samples.map(s => figure(s[0], s[1], false)));
  document.body.dataset.step = u.step;
});
es.onerror = () => { $("status").textContent = "connection lost; retrying"; };
