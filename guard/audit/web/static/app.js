// The review page: filters -> /api/records, /api/chart; a row -> /api/records/{id}.
// Plain DOM and SVG, no libraries: the page must work offline. Values are always set with
// textContent, never parsed as HTML.
"use strict";

const FILTERS = ["since", "until", "decision", "principal", "policy", "policy_sha", "rule",
  "entity", "category", "model", "status"];
const DECISIONS = ["allow", "redact", "warn", "block"];
const SVG = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(window.location.search);
const adminKey = params.get("key");
let nextBefore = null;

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path) {
  const headers = adminKey ? { Authorization: "Bearer " + adminKey } : {};
  const response = await fetch(path, { headers });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function query(extra) {
  const q = new URLSearchParams();
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value) q.set(name, value);
  }
  for (const [name, value] of Object.entries(extra || {})) {
    if (value !== null && value !== undefined) q.set(name, value);
  }
  return q.toString();
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function decisionBadge(decision) {
  return decision ? el("span", { class: "d d-" + decision }, decision) : "";
}

function tags(values) {
  const span = el("span");
  for (const value of values) span.append(el("span", { class: "tag" }, value));
  return span;
}

function money(value) {
  return typeof value === "number" ? "$" + value.toFixed(6) : "";
}

// -- table --------------------------------------------------------------------------------

function row(record) {
  const trail = record.event && record.event.startsWith("guard.audit.");
  const entities = Object.entries(record.entities || {}).map(([k, n]) => k + " ×" + n);
  const tr = el("tr", { "data-id": record.id, "data-request-id": record.request_id,
    "data-decision": record.decision, class: trail ? "trail" : null },
    el("td", {}, record.id),
    el("td", { class: "mono nowrap", title: record.ts || "" }, (record.ts || "").replace("T", " ").replace(/\.\d+Z$/, "")),
    el("td", {}, trail ? record.event.slice(12) : decisionBadge(record.decision)),
    el("td", {}, record.status || ""),
    el("td", { class: "mono" }, record.principal || ""),
    el("td", {}, record.model || ""),
    el("td", {}, record.policy ? record.policy + "@" + String(record.policy_sha256 || "").slice(0, 8) : ""),
    el("td", {}, tags(entities)),
    el("td", {}, tags((record.rules || []).map((r) => r.id + ":" + r.action))),
    el("td", {}, money(record.cost_usd)));
  tr.addEventListener("click", () => { window.location.hash = "record-" + record.id; });
  return tr;
}

async function loadRecords(append) {
  const body = await api("api/records?" + query({ limit: 100, before: append ? nextBefore : null }));
  const tbody = document.querySelector("#records tbody");
  if (!append) tbody.replaceChildren();
  for (const record of body.records) tbody.append(row(record));
  nextBefore = body.next_before;
  document.getElementById("more").hidden = nextBefore === null;
  document.getElementById("count").textContent = "(" + tbody.rows.length + " of " + body.total + ", newest first)";
  document.getElementById("store").textContent = body.store;
  markSelected();
}

// -- chart --------------------------------------------------------------------------------

// Hours (or days) without records still take their place, so the axis is time.
function fillGaps(names, bucket) {
  if (names.length < 2) return names;
  const parse = (name) => Date.parse(bucket === "hour" ? name + ":00:00Z" : name + "T00:00:00Z");
  const step = bucket === "hour" ? 3600e3 : 86400e3;
  const first = parse(names[0]), last = parse(names[names.length - 1]);
  if (!Number.isFinite(first) || !Number.isFinite(last) || (last - first) / step > 2000) return names;
  const out = [];
  for (let t = first; t <= last; t += step) {
    const iso = new Date(t).toISOString();
    out.push(bucket === "hour" ? iso.slice(0, 13) : iso.slice(0, 10));
  }
  return out;
}

async function loadChart() {
  const bucket = params.get("bucket") === "day" ? "day" : "hour";
  const body = await api("api/chart?" + query({ bucket }));
  const buckets = new Map();
  for (const point of body.series) {
    if (!buckets.has(point.bucket)) buckets.set(point.bucket, {});
    buckets.get(point.bucket)[point.decision] = point.count;
  }
  const names = fillGaps([...buckets.keys()].sort(), bucket);
  for (const name of names) if (!buckets.has(name)) buckets.set(name, {});
  const width = 900, height = 180, left = 34, bottom = 22, top = 8;
  const max = Math.max(1, ...names.map((b) => Object.values(buckets.get(b)).reduce((a, n) => a + n, 0)));
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "decisions per " + bucket, "data-bucket": bucket, preserveAspectRatio: "none" });
  svg.append(el("svg:line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  svg.append(el("svg:line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }));
  svg.append(el("svg:text", { x: 2, y: top + 8 }, max));
  svg.append(el("svg:text", { x: 2, y: height - bottom }, 0));
  const slot = (width - left - 4) / Math.max(names.length, 1);
  const barWidth = Math.max(1, Math.min(40, slot * 0.8));
  names.forEach((name, i) => {
    const counts = buckets.get(name);
    let y = height - bottom;
    const x = left + 2 + i * slot + (slot - barWidth) / 2;
    const order = [...DECISIONS, ...Object.keys(counts).filter((d) => !DECISIONS.includes(d))];
    for (const decision of order) {
      const count = counts[decision];
      if (!count) continue;
      const h = (count / max) * (height - bottom - top);
      y -= h;
      const known = DECISIONS.includes(decision) ? decision : "other";
      svg.append(el("svg:rect", { class: "bar bar-" + known, x: x.toFixed(1), y: y.toFixed(1),
        width: barWidth.toFixed(1), height: Math.max(h, 0.5).toFixed(1), "data-bucket": name,
        "data-decision": decision, "data-count": count },
        el("svg:title", {}, `${name}${bucket === "hour" ? ":00" : ""} ${decision}: ${count}`)));
    }
  });
  const labels = names.length <= 12 ? names : [names[0], names[Math.floor(names.length / 2)], names[names.length - 1]];
  for (const name of labels) {
    const i = names.indexOf(name);
    svg.append(el("svg:text", { x: (left + 2 + i * slot).toFixed(1), y: height - 6 },
      bucket === "hour" ? name.slice(5).replace("T", " ") + "h" : name));
  }
  if (!names.length) svg.append(el("svg:text", { x: width / 2 - 40, y: height / 2 }, "no records"));
  document.getElementById("chart").replaceChildren(svg);
  const legend = document.getElementById("legend");
  legend.replaceChildren(...DECISIONS.map((d) => el("span", { class: "legend-" + d }, d)));
}

// -- detail -------------------------------------------------------------------------------

function definitions(pairs) {
  const dl = el("dl");
  for (const [name, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    dl.append(el("dt", {}, name), el("dd", {}, value));
  }
  return dl;
}

function counts(map) {
  const entries = Object.entries(map || {});
  return entries.length ? tags(entries.map(([k, n]) => k + " ×" + n)) : "none";
}

function moderation(verdict) {
  if (!verdict) return null;
  const scores = Object.entries(verdict.top_scores || {}).map(([c, s]) => c + " " + Number(s).toFixed(3));
  const parts = [verdict.provider + ": " + verdict.outcome];
  if ((verdict.flagged || []).length) parts.push("flagged " + verdict.flagged.join(", "));
  if (scores.length) parts.push("top " + scores.join(", "));
  if ((verdict.unevaluated || []).length) parts.push("not evaluated " + verdict.unevaluated.join(", "));
  if (verdict.error) parts.push("error " + verdict.error + (verdict.on_error ? " (on_error: " + verdict.on_error + ")" : ""));
  return parts.join("; ");
}

async function showDetail(id) {
  const aside = document.getElementById("detail");
  const body = await api("api/records/" + encodeURIComponent(id));
  const r = body.record;
  const stages = ["total", "pii", "moderation", "upstream", "first_token"];
  const latencyMap = r.latency_ms || {};
  const latency = [...stages, ...Object.keys(latencyMap).filter((k) => !stages.includes(k))]
    .filter((k) => latencyMap[k] !== null && latencyMap[k] !== undefined)
    .map((k) => k.replace("_", " ") + " " + Number(latencyMap[k]).toFixed(1) + " ms").join(", ");
  const usage = r.usage || {};
  const policy = r.policy || {};
  aside.replaceChildren(
    el("h2", {}, "Record #" + body.id),
    definitions([
      ["Time", r.ts], ["Event", r.event], ["Request", r.request_id],
      ["Decision", decisionBadge(r.decision)], ["Status", r.status], ["Code", r.code],
      ["Principal", r.principal], ["Route", r.route], ["Model", r.model],
      ["Policy", policy.name ? policy.name + " (" + policy.sha256 + ")" : null], ["Mode", r.mode],
      ["Input entities", r.event && r.event.startsWith("guard.audit.") ? null : counts(r.input_entities)],
      ["Output entities", r.output_entities ? counts(r.output_entities) : null],
      ["Moderation in", moderation((r.moderation || {}).input)],
      ["Moderation out", moderation((r.moderation || {}).output)],
      ["Rule hits", (r.output_rules || []).length ? tags(r.output_rules.map((h) => h.id + ": " + h.action)) : null],
      ["Latency", latency], ["Tokens", usage.prompt_tokens !== undefined ? usage.prompt_tokens + " in, " + usage.completion_tokens + " out" : null],
      ["Cost", money(r.cost_usd)], ["Stream", r.stream === undefined ? null : String(r.stream) + (r.truncated ? " (truncated)" : "")],
      ["Error", r.error], ["Chain", r.chain ? r.chain + " seq " + r.seq : null],
      ["Hash", r.hash ? el("span", { class: "mono" }, r.hash) : null],
    ]),
    el("details", {}, el("summary", {}, "Whole record (JSON)"), el("pre", {}, JSON.stringify(r, null, 2))));
  aside.dataset.id = String(body.id);
  markSelected();
}

function markSelected() {
  const id = (window.location.hash.match(/^#record-(\d+)$/) || [])[1];
  for (const tr of document.querySelectorAll("#records tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.id === id);
  }
}

async function onHash() {
  const id = (window.location.hash.match(/^#record-(\d+)$/) || [])[1];
  if (!id) return;
  try {
    await showDetail(id);
  } catch (error) {
    showError(error.message);
  }
}

// -- wiring -------------------------------------------------------------------------------

async function refresh() {
  showError("");
  try {
    await Promise.all([loadRecords(false), loadChart()]);
  } catch (error) {
    showError(error.message);
  }
}

function init() {
  const form = document.getElementById("filters");
  for (const name of [...FILTERS, "bucket"]) {
    const value = params.get(name);
    if (value && form.elements[name]) form.elements[name].value = value;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const name of [...FILTERS, "bucket"]) {
      const value = (form.elements[name].value || "").trim();
      if (value) params.set(name, value); else params.delete(name);
    }
    history.replaceState(null, "", "?" + params.toString() + window.location.hash);
    refresh();
  });
  form.addEventListener("reset", () => {
    for (const name of [...FILTERS, "bucket"]) params.delete(name);
    history.replaceState(null, "", "?" + params.toString());
    setTimeout(refresh, 0);
  });
  document.getElementById("more").addEventListener("click", () => loadRecords(true).catch((e) => showError(e.message)));
  window.addEventListener("hashchange", onHash);
  refresh().then(onHash);
}

document.addEventListener("DOMContentLoaded", init);
