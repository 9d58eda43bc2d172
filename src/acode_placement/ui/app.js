// The acode-placement console: the service's own HTTP API, read with its bearer token.
// Every value from the server is put on the page as text (textContent), never as
// markup; the token lives in this tab's sessionStorage and travels only in the
// Authorization header. No framework, no build step, nothing from another origin.
"use strict";

const TOKEN_KEY = "acode-placement-token";
const POLL_MS = 3000;
const state = { view: "targets", targets: [], sort: { key: "id", up: true }, timer: null,
                samples: [], decisions: [] };

// ---------------------------------------------------------------- small helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function text(value) {
  if (value === null || value === undefined || value === "") return "-";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : String(+value.toFixed(3));
  return String(value);
}

function money(value) {
  return value === null || value === undefined ? "unknown" : Number(value).toFixed(2);
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const headers = { "Accept": "application/json", ...(options.headers || {}) };
  const held = token();
  if (held) headers["Authorization"] = "Bearer " + held;
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  if (response.status === 401) {
    showLogin(held ? "That token was refused: check it and try again." : "");
    throw new Error("unauthorized");
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : String(response.status);
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

// --------------------------------------------------------------------- the token

function takeTokenFromFragment() {
  // #token=... fills the token; fragments never reach the server or its logs, and
  // it is removed from the address bar at once.
  const match = /(?:^|[#&])token=([^&]*)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function showLogin(message) {
  stopPolling();
  document.querySelectorAll(".view").forEach((view) => { view.hidden = true; });
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("token").focus();
}

async function openWithToken() {
  try {
    await api("/v1/strategies");
  } catch (error) {
    if (error.message !== "unauthorized") showLogin("The service did not answer: " + error.message);
    return;
  }
  document.getElementById("login").hidden = true;
  show(state.view);
}

// --------------------------------------------------------------------- the views

function show(view) {
  state.view = view;
  document.querySelectorAll("nav [data-view]").forEach((button) => {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  });
  document.querySelectorAll(".view").forEach((section) => { section.hidden = section.id !== "view-" + view; });
  stopPolling();
  const load = { targets: loadTargets, decisions: loadDecisions, reservations: loadReservations,
                 whatif: loadWhatIf, metrics: loadMetrics }[view];
  const tick = () => load().catch((error) => note(view, error.message));
  tick();
  if (view === "decisions" || view === "metrics" || view === "reservations") {
    state.timer = setInterval(tick, POLL_MS);
  }
}

function stopPolling() { if (state.timer) clearInterval(state.timer); state.timer = null; }

function note(view, message) {
  const where = document.getElementById(view + "-note") || document.getElementById(view + "-error");
  if (where && message !== "unauthorized") where.textContent = message;
}

// Targets ---------------------------------------------------------------------

function targetRow(t) {
  const caps = t.capabilities || {};
  const gpus = (caps.gpus && caps.gpus.length ? caps.gpus : (caps.gpu ? [caps.gpu] : []));
  const gpuText = gpus.map((g) => {
    const mig = g.mig ? ` (MIG ${g.mig})` : "";
    return `${text(g.count)}x ${text(g.model)} ${g.vramGb ? text(g.vramGb) + " GB" : (g.unified ? "unified" : "")}${mig}`;
  }).join(", ");
  const age = caps.discoveredAt ? (Date.now() - Date.parse(caps.discoveredAt)) / 1000 : null;
  const price = t.price ? `$${text(t.price.hourly)}/h ${t.price.source || ""}${t.price.asOf ? " " + t.price.asOf : ""}`
                        : (t.hourlyRate ? `$${text(t.hourlyRate)}/h` : "-");
  const held = t.reserved;
  const reserved = held && held.tasks ? `${held.tasks} task(s): ${text(held.cpu)} CPU, ${text(held.memoryGb)} GB, ${text(held.gpus)} GPU` : "-";
  const labels = Object.entries(t.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  return { t, id: t.id, type: t.type, status: t.discovery ? t.discovery.status : "-",
           cause: t.discovery ? t.discovery.cause : null, age,
           cpu: caps.cpu, memory: caps.memoryGb, disk: caps.diskGb, gpu: gpuText,
           tools: (caps.tools || []).join(", "), price, priceValue: t.price ? t.price.hourly : t.hourlyRate,
           reserved, labels };
}

async function loadTargets() {
  state.targets = (await api("/v1/targets")).map(targetRow);
  renderTargets();
}

function ageText(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "-";
  if (seconds < 90) return Math.round(seconds) + " s";
  if (seconds < 5400) return Math.round(seconds / 60) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

function renderTargets() {
  const wanted = document.getElementById("target-filter").value.trim().toLowerCase();
  const key = state.sort.key === "price" ? "priceValue" : state.sort.key;
  const rows = state.targets
    .filter((r) => !wanted || [r.id, r.type, r.status, r.gpu, r.tools, r.labels].join(" ").toLowerCase().includes(wanted))
    .sort((a, b) => {
      const x = a[key], y = b[key];
      const missing = (v) => v === null || v === undefined || v === "-";
      if (missing(x) || missing(y)) return missing(x) - missing(y);  // unknown last, either way
      const order = x === y ? 0 : (x < y ? -1 : 1);
      return state.sort.up ? order : -order;
    });
  const body = document.querySelector("#targets-table tbody");
  body.replaceChildren(...rows.map((r) => el("tr", { class: "status-" + r.status },
    el("td", {}, r.id), el("td", {}, r.type),
    el("td", { title: r.cause || "" }, r.status, r.cause ? el("div", { class: "cause" }, r.cause) : null),
    el("td", {}, ageText(r.age)), el("td", {}, text(r.cpu)), el("td", {}, text(r.memory)),
    el("td", {}, text(r.disk)), el("td", {}, r.gpu || "-"), el("td", {}, r.tools || "-"),
    el("td", {}, r.price), el("td", {}, r.reserved), el("td", {}, r.labels || "-"))));
  document.getElementById("targets-note").textContent = `${rows.length} of ${state.targets.length} targets`;
}

// Decisions -------------------------------------------------------------------

async function loadDecisions() {
  state.decisions = await api("/v1/placements?limit=50");
  const body = document.querySelector("#decisions-table tbody");
  body.replaceChildren(...state.decisions.map((d) => {
    const open = () => openDecision(d.requestId);
    return el("tr", { class: d.success ? "placed" : "failed", tabindex: "0", role: "button",
                      "aria-label": `decision ${d.requestId}`, "data-request": d.requestId,
                      onclick: open, onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
      el("td", {}, (d.time || "").replace("T", " ").slice(0, 19)), el("td", {}, d.taskName || "-"),
      el("td", {}, d.success ? "placed" : "no target"), el("td", {}, d.target || "-"),
      el("td", {}, d.reason), el("td", {}, money(d.estimatedCost)), el("td", {}, text(d.decisionMs)));
  }));
  document.getElementById("decisions-note").textContent = state.decisions.length ? "" : "No decisions recorded yet.";
}

function explanation(result, heading) {
  const candidates = result.candidates || [];
  const rows = candidates.map((c, n) => el("tr", { class: c.eligible ? "placed" : "failed" },
    el("td", {}, c.eligible ? String(n + 1) : "-"), el("td", {}, c.id), el("td", {}, c.type),
    el("td", {}, c.eligible ? Number(c.score).toFixed(3) : "not eligible"), el("td", {}, money(c.estimatedCost)),
    el("td", {}, el("ul", { class: "checks" },
      (c.matches || []).map((m) => el("li", { class: "match" }, "✓ " + m)),
      (c.mismatches || []).map((m) => el("li", { class: "mismatch" }, "✗ " + m)),
      c.discovery && c.discovery.cause ? el("li", { class: "cause" }, `${c.discovery.status}: ${c.discovery.cause}`) : null))));
  const attempts = (result.attempts || []).map((a) => el("li", {}, `${a.target}: ${a.ok ? "acquired" : "failed"}${a.error ? " (" + a.error + ")" : ""}`));
  return [
    el("h3", {}, heading),
    el("p", { class: result.success ? "outcome" : "outcome failed" },
       result.success ? `${result.target.id} (${result.target.type})  score ${Number(result.score).toFixed(3)}  ${result.strategy}/${result.mode}  est. cost $${money(result.estimatedCost)}  [${result.reason}]`
                      : `no target (${result.reason}): ${result.failureMessage || ""}`),
    result.why ? el("p", {}, "why: " + result.why) : null,
    Object.keys(result.causes || {}).length
      ? el("p", { class: "causes" }, "ruled out: " + Object.entries(result.causes).map(([cause, n]) => `${n} ${cause}`).join(", "))
      : null,
    result.alternatives && result.alternatives.length ? el("p", {}, "fallback: " + result.alternatives.join(", ")) : null,
    attempts.length ? el("div", {}, el("h4", {}, "Acquisition attempts"), el("ul", {}, attempts)) : null,
    el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, ["#", "target", "type", "score", "cost $", "matches and mismatches"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))),
  ].filter(Boolean);
}

async function openDecision(requestId) {
  const record = await api("/v1/placements/" + encodeURIComponent(requestId));
  const box = document.getElementById("explanation");
  box.replaceChildren(el("button", { type: "button", class: "quiet", onclick: () => { box.hidden = true; } }, "Close"),
                      ...explanation(record.result || {}, `Decision ${record.requestId} (${record.taskName || "no task name"})`));
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

// Reservations ----------------------------------------------------------------

async function loadReservations() {
  const leases = await api("/v1/reservations");
  const body = document.querySelector("#reservations-table tbody");
  body.replaceChildren(...leases.map((r) => el("tr", {},
    el("td", { class: "mono" }, r.id), el("td", {}, r.target), el("td", {}, text(r.cpu)),
    el("td", {}, text(r.memoryGb)), el("td", {}, text(r.gpus)), el("td", {}, r.owner || "-"),
    el("td", {}, r.taskName || "-"), el("td", {}, (r.expires || "").replace("T", " ").slice(0, 19)),
    el("td", {}, el("button", { type: "button", "data-release": r.id, onclick: () => release(r) }, "Release")))));
  document.getElementById("reservations-note").textContent = leases.length ? `${leases.length} active` : "No active reservations.";
}

async function release(lease) {
  if (!confirm(`Release reservation ${lease.id} on ${lease.target}?`)) return;
  const said = document.getElementById("reservations-said");
  try {
    await api("/v1/reservations/" + encodeURIComponent(lease.id), { method: "DELETE" });
    said.textContent = `Released ${lease.id}.`;
  } catch (error) {
    said.textContent = error.message === "unauthorized" ? "" : error.message;
  }
  await loadReservations();
}

// What-if ---------------------------------------------------------------------

async function loadWhatIf() {
  const select = document.querySelector("#whatif-form select[name=strategy]");
  if (select.options.length) return;
  const found = await api("/v1/strategies");
  select.replaceChildren(el("option", { value: "" }, "server's"), ...found.strategies.map((s) => el("option", { value: s.name }, s.name)));
}

function number(form, name) {
  const value = form.elements[name].value.trim();
  return value === "" ? undefined : Number(value);
}

async function whatIf(event) {
  event.preventDefault();
  const form = event.target;
  const requirements = { cpu: number(form, "cpu"), memoryGb: number(form, "memoryGb"),
                         maxRuntimeMinutes: number(form, "maxRuntimeMinutes") };
  const gpus = number(form, "gpuCount");
  if (gpus) {
    requirements.gpu = { count: gpus };
    if (form.elements.gpuModel.value.trim()) requirements.gpu.model = form.elements.gpuModel.value.trim();
    if (number(form, "minVram")) requirements.gpu.minVram = number(form, "minVram");
  }
  const tools = form.elements.tools.value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tools.length) requirements.tools = tools;
  if (form.elements.os.value) requirements.os = form.elements.os.value;
  Object.keys(requirements).forEach((k) => requirements[k] === undefined && delete requirements[k]);
  const options = {};
  if (form.elements.strategy.value) options.strategy = form.elements.strategy.value;
  if (form.elements.mode.value) options.mode = form.elements.mode.value;
  const out = document.getElementById("whatif-result");
  document.getElementById("whatif-error").textContent = "";
  try {
    const result = await api("/v1/placements:explain", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ task: { name: form.elements.name.value || "what-if", requirements }, options, candidates: true }),
    });
    out.replaceChildren(...explanation(result, "Where it would go"));
    out.hidden = false;
  } catch (error) {
    out.hidden = true;
    document.getElementById("whatif-error").textContent = error.message;
  }
}

// Metrics ---------------------------------------------------------------------

function parseMetrics(textBody) {
  const samples = [];
  for (const line of textBody.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

function total(samples, name, test) {
  return samples.filter((s) => s.name === name && (!test || test(s.labels))).reduce((sum, s) => sum + s.value, 0);
}

function bars(values, labels, unit) {
  // a small SVG bar chart, drawn with DOM calls (no markup strings)
  const ns = "http://www.w3.org/2000/svg";
  const width = 260, height = 90, most = Math.max(1, ...values);
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 16}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", labels.map((l, i) => `${l}: ${values[i]}${unit}`).join(", "));
  const step = width / Math.max(1, values.length);
  values.forEach((v, i) => {
    const bar = document.createElementNS(ns, "rect");
    const h = (v / most) * height;
    bar.setAttribute("x", String(i * step + 2)); bar.setAttribute("y", String(height - h));
    bar.setAttribute("width", String(Math.max(1, step - 4))); bar.setAttribute("height", String(h));
    bar.setAttribute("class", "bar");
    svg.append(bar);
    if (labels[i]) {
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", String(i * step + step / 2)); label.setAttribute("y", String(height + 12));
      label.setAttribute("text-anchor", "middle"); label.setAttribute("class", "axis");
      label.textContent = labels[i];
      svg.append(label);
    }
  });
  return svg;
}

async function loadMetrics() {
  const samples = parseMetrics(await api("/metrics"));
  const now = Date.now();
  const placed = total(samples, "acode_placement_placements_total", (l) => l.outcome === "placed");
  const failed = total(samples, "acode_placement_placements_total", (l) => l.outcome !== "placed");
  state.samples.push({ at: now, placed, failed });
  state.samples = state.samples.filter((s) => now - s.at <= 10 * 60 * 1000);
  const first = state.samples[0];
  const minutes = Math.max((now - first.at) / 60000, 1 / 60);
  const count = total(samples, "acode_placement_decision_seconds_count");
  const sum = total(samples, "acode_placement_decision_seconds_sum");
  const hits = total(samples, "acode_placement_capability_cache_lookups_total", (l) => l.result === "hit");
  const misses = total(samples, "acode_placement_capability_cache_lookups_total", (l) => l.result === "miss");
  const bursts = total(samples, "acode_placement_placements_total", (l) => l.outcome === "placed" && l.target_type === "ec2");
  let spend = 0;
  try {
    const recent = await api("/v1/placements?limit=1000");
    spend = recent.filter((d) => d.success && d.targetType === "ec2").reduce((s, d) => s + (d.estimatedCost || 0), 0);
  } catch (error) { spend = NaN; }
  const buckets = samples.filter((s) => s.name === "acode_placement_decision_seconds_bucket");
  const bounds = [...new Set(buckets.map((b) => b.labels.le))];
  const cumulative = bounds.map((le) => total(samples, "acode_placement_decision_seconds_bucket", (l) => l.le === le));
  const perBucket = cumulative.map((c, i) => c - (i ? cumulative[i - 1] : 0));
  const rate = (key) => (state.samples[state.samples.length - 1][key] - first[key]) / minutes;
  const card = (title, value, chart) => el("figure", { class: "card" }, el("figcaption", {}, title), el("p", { class: "big" }, value), chart || null);
  document.getElementById("metrics-cards").replaceChildren(
    card("Placements per minute, by outcome", `${rate("placed").toFixed(1)} placed, ${rate("failed").toFixed(1)} without a target`,
         bars([placed, failed], ["placed", "no target"], "")),
    card("Decision latency", count ? `${(1000 * sum / count).toFixed(2)} ms on average over ${count}` : "no decisions yet",
         bars(perBucket, bounds.map((b, i) => (perBucket[i] ? (b === "+Inf" ? "more" : "≤" + (Number(b) * 1000) + "ms") : "")), "")),
    card("Capability cache hit rate", hits + misses ? `${(100 * hits / (hits + misses)).toFixed(1)} % of ${hits + misses} lookups` : "no lookups yet",
         bars([hits, misses], ["hit", "miss"], "")),
    card("Bursts to the cloud and estimated spend", `${bursts} burst(s), $${Number.isNaN(spend) ? "unknown" : spend.toFixed(2)} (last 1,000 decisions)`),
  );
}

// --------------------------------------------------------------------- wiring up

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromFragment();
  document.querySelectorAll("nav [data-view]").forEach((button) => button.addEventListener("click", () => show(button.dataset.view)));
  document.getElementById("forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(""); });
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
    document.getElementById("token").value = "";
    openWithToken();
  });
  document.getElementById("target-filter").addEventListener("input", renderTargets);
  document.querySelectorAll("#targets-table [data-sort]").forEach((button) => button.addEventListener("click", () => {
    const key = button.dataset.sort;
    state.sort = { key, up: state.sort.key === key ? !state.sort.up : true };
    renderTargets();
  }));
  document.getElementById("whatif-form").addEventListener("submit", whatIf);
  openWithToken();  // a service without a token (loopback only) opens at once
});
