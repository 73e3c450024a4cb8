"""The playground's page: one HTML document with its CSS and script inline (nothing from a CDN), so it works
offline. It reads /api/info, streams /api/generate (server-sent events over a POST), and shows every error
the server sends in one line (#error). Ids and data- attributes are what the browser test drives."""
from __future__ import annotations

import json

from ..gateview.html import PALETTE

_PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>steerkit playground</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222;max-width:1400px}
h1{font-size:1.25em;margin:.2em 0}.meta{color:#555;font-size:.9em}
textarea{width:100%;font:inherit;font-size:.95em}
.row{display:flex;gap:1em;align-items:center;flex-wrap:wrap;margin:.5em 0}
.slider{display:flex;gap:.4em;align-items:center}.slider input[type=number]{width:5em}
.sw{display:inline-block;width:.9em;height:.6em;margin-right:.2em}
#error{color:#b00020;min-height:1.2em;font-weight:600}
.tabs button{border:1px solid #bbb;background:#f4f4f4;padding:.3em .9em;cursor:pointer}
.tabs button.on{background:#fff;border-bottom-color:#fff;font-weight:600}
.tab{display:none;border:1px solid #bbb;padding:.8em}.tab.on{display:block}
.cols{display:flex;gap:1.2em}.col{flex:1;min-width:0;border:1px solid #ddd;border-radius:6px;padding:.6em}
.text{line-height:2.1;font-family:ui-monospace,monospace;font-size:.9em}
.tok{display:inline-flex;flex-direction:column;vertical-align:top;margin:0 1px 2px 0}
.tok .t{white-space:pre;padding:0 1px}.tok.prompt .t{border-bottom:1px dotted #999;color:#666}
.lane{display:block;height:4px;margin-top:1px;border-radius:1px;background:transparent}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
</style></head><body>
<h1>steerkit playground</h1>
<p class="meta" id="meta"></p>
<div class="row"><label>vector file <input id="vectors-path" size="60"></label>
<button id="load-vectors">Load</button></div>
<textarea id="prompt" rows="3" placeholder="a prompt"></textarea>
<div class="row" id="sliders"></div>
<div class="row"><label>new tokens <input id="max-new-tokens" type="number" min="1" max="512" style="width:5em"></label>
<button id="generate">Generate</button><button id="sweep-run">Sweep</button><span id="status"></span></div>
<div id="error" role="alert"></div>
<div class="tabs"><button data-tab="stream" class="on">Generate</button><button data-tab="sweep">Sweep</button>
<button data-tab="layers">Layers</button></div>
<div class="tab on" id="tab-stream"><div class="cols">
<div class="col"><b>unsteered</b><div class="text" id="unsteered"></div></div>
<div class="col"><b>steered</b><div class="text" id="steered"></div></div></div></div>
<div class="tab" id="tab-sweep"><p class="meta">The prompt at several multiples of the sliders' strengths, in one
batch. ΔNLL: nats per token under the unsteered model, against the unsteered row.</p><div id="sweep"></div></div>
<div class="tab" id="tab-layers"><div id="layers"></div></div>
<script>
const PALETTE = __PALETTE__;
let INFO = null;
const $ = (id) => document.getElementById(id);
function esc(s){return s.replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));}
function showError(msg){ $("error").textContent = msg || ""; }
async function post(url, body){
  const r = await fetch(url, {method:"POST", headers:{"Content-Type":"application/json"}, body:JSON.stringify(body)});
  if (!r.ok){ let m = r.status + ""; try { m = (await r.json()).error; } catch(e){} throw new Error(m); }
  return r;
}
function build(info){
  INFO = info;
  $("meta").textContent = `${info.model} · vectors ${info.vectors || "(given in Python)"} · chat template ${info.chat ? "on" : "off"}`
    + (info.suggested_for ? ` · sliders start at the suggested strength (${info.suggested_for})` : "");
  if (info.vectors) $("vectors-path").value = info.vectors;
  if (!$("max-new-tokens").value) $("max-new-tokens").value = info.max_new_tokens;
  $("sliders").innerHTML = info.attributes.map((a, k) => `<span class="slider"><i class="sw" style="background:${PALETTE[k % PALETTE.length]}"></i>${esc(a.name)}
    <input type="range" id="range-${esc(a.name)}" data-attr="${esc(a.name)}" min="${a.min}" max="${a.max}" step="0.05" value="${a.suggested}">
    <input type="text" id="strength-${esc(a.name)}" data-attr="${esc(a.name)}" value="${(+a.suggested).toFixed(2)}"></span>`).join("");
  for (const a of info.attributes){
    $("range-" + a.name).oninput = (e) => { $("strength-" + a.name).value = (+e.target.value).toFixed(2); };
    $("strength-" + a.name).oninput = (e) => { const v = parseFloat(e.target.value); if (isFinite(v)) $("range-" + a.name).value = v; };
  }
  const s = info.places.scores || {};
  const rows = Object.keys(s).map(p => `<tr><td>${esc(p)}${p === info.places.chosen ? " (chosen)" : ""}</td><td>${(+s[p]).toFixed(3)}</td></tr>`).join("");
  $("layers").innerHTML = rows ? `<p class="meta">${esc(info.places.how || "")}</p><table><tr><th>place</th><th>score on the development split</th></tr>${rows}</table>`
    : `<p class="meta">This vector file has no development-split sweep (steerkit bench-steer --places auto writes one).</p>`;
}
function strengths(){
  // sent as typed: the server checks them and answers in one line
  const out = {};
  for (const a of INFO.attributes){ const t = $("strength-" + a.name).value.trim(); const v = Number(t);
    out[a.name] = (t !== "" && isFinite(v)) ? v : t; }
  return out;
}
function request(){ return {prompt: $("prompt").value, strength: strengths(), max_new_tokens: parseInt($("max-new-tokens").value, 10)}; }
function token(text, gates, prompt){
  const span = document.createElement("span");
  span.className = "tok" + (prompt ? " prompt" : "");
  const t = document.createElement("span"); t.className = "t"; t.textContent = text.replace(/\n/g, "↵") || "\u200b";
  span.appendChild(t);
  INFO.lanes.forEach((lane, j) => { const i = document.createElement("i"); i.className = "lane";
    i.dataset.attr = lane.attribute; i.dataset.place = lane.place; span.appendChild(i); });
  if (gates) shade(span, gates);
  return span;
}
function shade(span, gates){
  const k = INFO.attributes.length;
  span.querySelectorAll("i.lane").forEach((i, j) => { const g = gates[j]; i.dataset.gate = g.toFixed(4);
    const c = PALETTE[(j % k) % PALETTE.length];
    const [r, gg, b] = [1, 3, 5].map(o => parseInt(c.slice(o, o + 2), 16));
    i.style.background = `rgba(${r},${gg},${b},${g})`; });
  span.title = INFO.lanes.map((l, j) => `${l.attribute}${INFO.lanes.length > k ? " at " + l.place : ""}: gate ${gates[j].toFixed(3)}`).join("\n");
}
async function generate(){
  showError(""); $("status").textContent = "generating…"; $("status").dataset.state = "running";
  const cols = [$("unsteered"), $("steered")]; cols.forEach(c => { c.innerHTML = ""; c.dataset.text = ""; });
  let r;
  try { r = await post("/api/generate", request()); } catch(e){ showError(e.message); $("status").textContent = ""; $("status").dataset.state = "error"; return; }
  const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
  const spans = [[], []];
  while (true){
    const {value, done} = await reader.read(); if (done) break;
    buf += dec.decode(value, {stream: true});
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0){
      const line = buf.slice(0, cut); buf = buf.slice(cut + 2);
      if (!line.startsWith("data: ")) continue;
      const ev = JSON.parse(line.slice(6));
      if (ev.type === "prompt") ev.tokens.forEach((t, i) => cols.forEach((c, b) => c.appendChild(token(t, ev.gates[b][i], true))));
      else if (ev.type === "token") ev.rows.forEach((row, b) => {
        if (row.gates) shade(spans[b][row.gates_of], row.gates);
        if (row.text !== null){ const s = token(row.text, null, false); s.dataset.index = row.index; spans[b].push(s); cols[b].appendChild(s); }
      });
      else if (ev.type === "done"){ ev.texts.forEach((t, b) => cols[b].dataset.text = t);
        $("status").textContent = `${ev.tokens} tokens in ${ev.seconds.toFixed(2)} s (${ev.tokens_per_second.toFixed(1)} tokens/s)`;
        $("status").dataset.state = "done"; }
      else if (ev.type === "error"){ showError(ev.message); $("status").textContent = ""; $("status").dataset.state = "error"; }
    }
  }
}
async function sweep(){
  showError(""); $("status").textContent = "sweeping…"; $("status").dataset.state = "running";
  try {
    const res = await (await post("/api/sweep", request())).json();
    const judges = INFO.attributes.filter(a => a.judge).map(a => a.name);
    $("sweep").innerHTML = `<table><tr><th>×</th><th>strength</th><th>ΔNLL</th>${judges.map(j => `<th>${esc(j)} judge</th>`).join("")}<th>text</th></tr>`
      + res.rows.map(r => `<tr><td>${r.multiple}</td><td>${r.strength.map(x => x.toFixed(2)).join(", ")}</td><td>${r.delta_nll === null ? "-" : r.delta_nll.toFixed(3)}</td>`
      + judges.map(j => `<td>${j in r.judge ? r.judge[j].toFixed(2) : "-"}</td>`).join("") + `<td>${esc(r.text)}</td></tr>`).join("") + "</table>"
      + res.notes.map(n => `<p class="meta">${esc(n)}</p>`).join("");
    $("status").textContent = "sweep done"; $("status").dataset.state = "done";
  } catch(e){ showError(e.message); $("status").textContent = ""; $("status").dataset.state = "error"; }
}
async function loadVectors(){
  showError("");
  try { build(await (await post("/api/vectors", {path: $("vectors-path").value})).json()); $("status").textContent = "vectors loaded"; }
  catch(e){ showError(e.message); }
}
document.querySelectorAll(".tabs button").forEach(b => b.onclick = () => {
  document.querySelectorAll(".tabs button").forEach(x => x.classList.toggle("on", x === b));
  document.querySelectorAll(".tab").forEach(t => t.classList.toggle("on", t.id === "tab-" + b.dataset.tab)); });
$("generate").onclick = generate; $("sweep-run").onclick = () => { document.querySelector('[data-tab="sweep"]').click(); sweep(); };
$("load-vectors").onclick = loadVectors;
fetch("/api/info").then(r => r.json()).then(build).then(() => { document.body.dataset.ready = "1"; }, e => showError(e.message));
</script></body></html>
"""

PAGE = _PAGE.replace("__PALETTE__", json.dumps(PALETTE))
