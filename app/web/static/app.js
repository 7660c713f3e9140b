// Kairos dashboard: plain JavaScript, no build step.
// Data: /api/stats (rates), /api/rules, /api/matches + /api/stream (SSE), /api/keys/{key}, /readyz.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: localStorage.getItem("kairos.token") || "",
  rules: new Map(),          // name -> rule
  feed: [],                  // newest first, CloudEvents
  seen: new Set(),           // detection ids already shown
  kind: "",                  // feed filter
  key: null,                 // key being shown
  keyData: null,
  keyFetchedAt: 0,
};
const FEED_MAX = 200;
const WINDOW_S = 300;

// ---------------------------------------------------------------- HTTP with optional token

let tokenPrompt = null;
function askToken() {
  if (!tokenPrompt) {
    tokenPrompt = new Promise((resolve) => {
      const dialog = $("token-dialog");
      $("token-form").onsubmit = () => {
        state.token = $("token-input").value.trim();
        localStorage.setItem("kairos.token", state.token);
        tokenPrompt = null;
        resolve();
      };
      dialog.showModal();
    });
  }
  return tokenPrompt;
}

async function api(path) {
  for (;;) {
    const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
    const resp = await fetch(path, { headers, cache: "no-store" });
    if (resp.status === 401) { await askToken(); continue; }
    const type = resp.headers.get("Content-Type") || "";
    const body = type.includes("json") ? await resp.json() : await resp.text();
    return { status: resp.status, body, headers: resp.headers };
  }
}

// ---------------------------------------------------------------- formatting helpers

const nf = new Intl.NumberFormat("en-US");
function rate(v) {
  if (v == null || Number.isNaN(v)) return "–";
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(v === 0 ? 0 : 2);
}
function duration(ms) {
  if (ms == null) return "";
  const neg = ms < 0; ms = Math.abs(ms);
  const s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const txt = h ? `${h}h ${String(m).padStart(2, "0")}m` : m ? `${m}m ${String(sec).padStart(2, "0")}s` : `${sec}s`;
  return neg ? `-${txt}` : txt;
}
function clock(t) {
  const d = typeof t === "number" ? new Date(t) : new Date(t || Date.now());
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour12: false });
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
function summary(data) {
  if (data == null) return "";
  if (typeof data !== "object") return String(data);
  return Object.entries(data).slice(0, 6)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

// ---------------------------------------------------------------- readiness

async function pollReady() {
  const pill = $("ready");
  try {
    const resp = await fetch("/readyz", { cache: "no-store" });
    const body = await resp.json();
    if (resp.ok) { pill.className = "pill pill-ok"; pill.textContent = "ready"; pill.title = "GET /readyz"; }
    else {
      pill.className = body.status === "stalled" ? "pill pill-bad" : "pill pill-wait";
      pill.textContent = body.status === "stalled" ? "recovery stalled" : "starting";
      pill.title = body.reason || "";
    }
  } catch (e) {
    pill.className = "pill pill-bad"; pill.textContent = "unreachable"; pill.title = String(e);
  }
}

// ---------------------------------------------------------------- stats tiles and chart

async function pollStats() {
  const { status, body } = await api(`/api/stats?seconds=${WINDOW_S}`);
  if (status !== 200) return;
  $("worker").textContent = body.worker;
  const series = body.series;
  const recent = series.slice(-3);
  const avg = (k) => (recent.length ? recent.reduce((a, p) => a + p[k], 0) / recent.length : 0);
  $("t-eps").textContent = rate(avg("events"));
  $("t-mps").textContent = rate(avg("matches"));
  $("t-events").textContent = `${nf.format(body.totals.events)} total`;
  $("t-matches").textContent = `${nf.format(body.totals.matches)} total`;
  $("t-timeouts").textContent = nf.format(body.totals.timeouts);
  $("t-late").textContent = nf.format(body.totals.late);
  $("t-dlq").textContent = nf.format(body.totals.dlq);
  drawChart(series);
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart(series) {
  const svg = $("chart");
  const W = 1000, H = 220, L = 48, R = 48, T = 12, B = 24;
  const now = Date.now() / 1000, t0 = now - WINDOW_S;
  const x = (t) => L + ((t - t0) / WINDOW_S) * (W - L - R);
  const eMax = niceMax(Math.max(0, ...series.map((p) => p.events)));
  const mMax = niceMax(Math.max(0, ...series.map((p) => Math.max(p.matches, p.timeouts))));
  const yE = (v) => H - B - (v / eMax) * (H - T - B);
  const yM = (v) => H - B - (v / mMax) * (H - T - B);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const y = T + (i * (H - T - B)) / 4;
    parts.push(`<line class="grid-line" x1="${L}" x2="${W - R}" y1="${y}" y2="${y}"/>`);
    parts.push(`<text class="axis-label axis-events" x="${L - 6}" y="${y + 4}" text-anchor="end">${rate(eMax * (1 - i / 4))}</text>`);
    parts.push(`<text class="axis-label axis-matches" x="${W - R + 6}" y="${y + 4}">${rate(mMax * (1 - i / 4))}</text>`);
  }
  for (let m = 0; m <= WINDOW_S / 60; m++) {
    const t = now - m * 60;
    parts.push(`<text class="axis-label" x="${x(t)}" y="${H - 6}" text-anchor="middle">${m === 0 ? "now" : `-${m}m`}</text>`);
  }
  const pts = series.filter((p) => p.t >= t0);
  if (pts.length > 1) {
    const line = (k, y) => pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p[k]).toFixed(1)}`).join("");
    const area = `${line("events", yE)}L${x(pts[pts.length - 1].t).toFixed(1)},${H - B}L${x(pts[0].t).toFixed(1)},${H - B}Z`;
    parts.push(`<path class="events-area" d="${area}"/>`);
    parts.push(`<path class="events-line" d="${line("events", yE)}"/>`);
    parts.push(`<path class="timeouts-line" d="${line("timeouts", yM)}"/>`);
    parts.push(`<path class="matches-line" d="${line("matches", yM)}"/>`);
  } else {
    parts.push(`<text class="axis-label" x="${W / 2}" y="${H / 2}" text-anchor="middle">collecting…</text>`);
  }
  svg.innerHTML = parts.join("");
}

// ---------------------------------------------------------------- rules

async function pollRules() {
  const { status, body } = await api("/api/rules");
  if (status !== 200) return;
  state.rules = new Map(body.rules.map((r) => [r.name, r]));
  const rows = body.rules
    .slice()
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((r) => {
      const c = r.counts || {};
      return el("tr", { "data-rule": r.name },
        el("td", {}, el("span", { class: "rname" }, r.name), " ", el("span", { class: "v" }, `v${r.version}`),
          r.last_error ? el("span", { class: "err", title: r.last_error }, r.last_error) : null),
        el("td", { class: "num" }, nf.format(c.events || 0)),
        el("td", { class: "num" }, nf.format(c.matches || 0)),
        el("td", { class: "num" }, nf.format(c.timeouts || 0)),
        el("td", { class: "num" }, nf.format(c.late || 0)));
    });
  $("rules").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No active rules."))]));
  $("t-rules").textContent = body.rules.length;
  const failing = body.rules.filter((r) => r.last_error).length;
  $("t-rules-sub").textContent = failing ? `${failing} with errors` : "all healthy";
}

// ---------------------------------------------------------------- detections feed

// CloudEvents from cep.rules: type "kairos.<offer|alert>", source "/kairos/rules/<rule>/v<n>",
// subject = key, extension kairoskind = "match" | "timeout".
function kindOf(ce) { return ce.kairoskind || "match"; }
function badgeOf(ce) { return (ce.type || "").startsWith("kairos.") ? ce.type.slice(7) : kindOf(ce); }
function ruleOf(ce) {
  const parts = String(ce.source || "").split("/");
  return parts[1] === "kairos" && parts[2] === "rules" ? parts[3] : ce.source;
}
function shown(ce) { return !state.kind || kindOf(ce) === state.kind || badgeOf(ce) === state.kind; }

function feedItem(ce, fresh) {
  const key = ce.subject || (ce.data && ce.data.key) || "";
  return el("li", { class: fresh ? "new" : "", "data-kind": kindOf(ce), "data-id": ce.id },
    el("span", { class: `badge badge-${badgeOf(ce)}` }, badgeOf(ce)),
    el("div", { class: "what" },
      el("div", {}, el("span", { class: "rule" }, ruleOf(ce)), el("span", { class: "muted" }, kindOf(ce) === "timeout" ? " (timed out)" : ""), " · ",
        key ? el("a", { class: "key", href: `#key=${encodeURIComponent(key)}`, onclick: (e) => { e.preventDefault(); lookup(key); } }, key) : ""),
      el("div", { class: "data", title: JSON.stringify(ce.data) }, summary(ce.data))),
    el("span", { class: "when" }, clock(ce.time)));
}

function addDetection(ce, fresh) {
  if (ce.id != null && state.seen.has(ce.id)) return;
  if (ce.id != null) state.seen.add(ce.id);
  state.feed.unshift(ce);
  if (state.feed.length > FEED_MAX) {
    const gone = state.feed.pop();
    state.seen.delete(gone.id);
  }
  if (shown(ce)) {
    const list = $("feed");
    list.prepend(feedItem(ce, fresh));
    while (list.children.length > FEED_MAX) list.lastChild.remove();
  }
  renderFeedMeta();
  if (fresh && state.key && (ce.subject === state.key)) refreshKey();
}

function renderFeed() {
  $("feed").replaceChildren(...state.feed.filter(shown).map((ce) => feedItem(ce, false)));
  renderFeedMeta();
}

function renderFeedMeta() {
  const n = $("feed").children.length;
  $("feed-count").textContent = n;
  $("feed-empty").style.display = n ? "none" : "block";
}

async function loadRecent() {
  const { status, body } = await api("/api/matches?limit=50");
  if (status !== 200) return;
  for (const ce of body.detections.slice().reverse()) addDetection(ce, false);
}

function connectStream() {
  const live = $("live");
  const qs = state.token ? `?access_token=${encodeURIComponent(state.token)}` : "";
  const source = new EventSource(`/api/stream${qs}`);
  source.addEventListener("hello", (e) => {
    live.className = "pill pill-ok";
    live.innerHTML = '<i class="dot"></i> live';
    try { live.title = `streaming from ${JSON.parse(e.data).worker}`; } catch (_) { /* keep title */ }
  });
  source.addEventListener("detection", (e) => addDetection(JSON.parse(e.data), true));
  source.onerror = () => {
    live.className = "pill pill-wait";
    live.innerHTML = '<i class="dot"></i> reconnecting';
  };
}

document.querySelectorAll(".chip").forEach((chip) => chip.addEventListener("click", () => {
  document.querySelectorAll(".chip").forEach((c) => c.classList.toggle("on", c === chip));
  state.kind = chip.dataset.kind;
  renderFeed();
}));

// ---------------------------------------------------------------- key lookup

async function lookup(key) {
  state.key = key;
  $("key-input").value = key;
  history.replaceState(null, "", `#key=${encodeURIComponent(key)}`);
  $("key-result").replaceChildren(el("p", { class: "note" }, "Looking up…"));
  await refreshKey();
}

async function refreshKey() {
  const key = state.key;
  if (!key) return;
  const { status, body, headers } = await api(`/api/keys/${encodeURIComponent(key)}`);
  if (key !== state.key) return;
  if (status === 200) {
    state.keyData = { body, by: headers.get("X-Kairos-Served-By") };
    state.keyFetchedAt = Date.now();
  } else {
    const why = status === 404 ? `Kairos knows nothing about ${key} yet.`
      : status === 503 ? `The worker owning ${key} is not ready yet; retrying.` : (body.detail || `HTTP ${status}`);
    state.keyData = { error: why };
  }
  renderKey();
}

function stageChips(ruleName, pm) {
  const rule = state.rules.get(ruleName);
  const stages = (rule && rule.stages) || [];
  const waiting = new Set(pm.waiting_for || []);
  if (!stages.length) {
    return el("div", { class: "stages" }, el("span", { class: "stage here" }, pm.stage),
      ...[...waiting].map((s) => [el("span", { class: "arrow" }, "→"), el("span", { class: "stage next" }, s)]));
  }
  const here = stages.indexOf(pm.stage);
  const chips = [];
  stages.forEach((s, i) => {
    if (i) chips.push(el("span", { class: "arrow" }, "→"));
    let cls = "stage";
    if (i < here) cls += " done";
    else if (i === here) cls += " here";
    else if (waiting.has(s) || (!waiting.size && i === here + 1)) cls += " next";
    chips.push(el("span", { class: cls, title: i === here ? "reached" : "" }, s));
  });
  return el("div", { class: "stages" }, chips);
}

function timeLeft(pm) {
  if (pm.time_left_ms != null) return pm.time_left_ms - (Date.now() - state.keyFetchedAt);
  if (pm.expires_at != null) return pm.expires_at - Date.now();
  return null;
}

function renderKey() {
  const box = $("key-result");
  const data = state.keyData;
  if (!data) return;
  if (data.error) { box.replaceChildren(el("p", { class: "error" }, data.error)); return; }
  const { body, by } = data;
  const blocks = [el("div", { class: "kr-head" }, el("span", { class: "k" }, body.key),
    by ? el("span", { class: "by" }, `answered by ${by}`) : null)];
  if (body.recovering) blocks.push(el("p", { class: "muted" }, `may be incomplete: ${body.recovering}`));
  const rules = Object.entries(body.rules || {});
  for (const [name, r] of rules) {
    const pms = r.partial_matches || [];
    blocks.push(el("div", { class: "kr-rule" },
      el("h3", {}, name, el("span", { class: "muted" }, pms.length ? ` · ${pms.length} in progress` : " · nothing in progress")),
      ...pms.map((pm) => {
        const left = timeLeft(pm);
        const counts = pm.events && typeof pm.events === "object"
          ? Object.values(pm.events).reduce((a, v) => a + (Array.isArray(v) ? v.length : 1), 0) : null;
        const waiting = (pm.waiting_for || []).join(" or ");
        return el("div", { class: "kr-pm" },
          stageChips(name, pm),
          el("div", { class: "kr-meta" },
            el("span", {}, "at ", el("b", {}, pm.stage)),
            waiting ? el("span", {}, "waiting for ", el("b", {}, waiting)) : null,
            counts != null ? el("span", {}, el("b", {}, counts), " event(s) matched") : null,
            left != null ? el("span", { class: "left" }, left > 0 ? `${duration(left)} left` : "window closing") : null,
            pm.expires_at != null ? el("span", {}, `window ends ${clock(pm.expires_at)}`) : null));
      })));
  }
  if (!rules.length) blocks.push(el("p", { class: "note" }, "No partial matches for this key."));
  if (body.context && Object.keys(body.context).length) {
    blocks.push(el("div", { class: "kr-context" }, el("b", {}, "context "), summary(body.context)));
  }
  const recent = body.recent || [];
  if (recent.length) {
    blocks.push(el("div", { class: "kr-context" }, el("b", {}, "recent "),
      recent.slice(0, 5).map((ce) => `${badgeOf(ce)} ${ruleOf(ce)} ${clock(ce.time)}`).join(" · ")));
  }
  box.replaceChildren(...blocks);
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("key-input").value.trim();
  if (key) lookup(key);
});

// ---------------------------------------------------------------- start

function every(ms, fn) {
  const run = () => Promise.resolve().then(fn).catch((e) => console.warn(e));
  run();
  return setInterval(run, ms);
}

async function main() {
  every(5000, pollReady);
  await pollRules().catch((e) => console.warn(e));
  await loadRecent().catch((e) => console.warn(e));
  connectStream();
  every(2000, pollStats);
  every(5000, pollRules);
  every(5000, refreshKey);
  setInterval(() => { if (state.keyData && !state.keyData.error) renderKey(); }, 1000);
  const m = location.hash.match(/^#key=(.+)$/);
  if (m) lookup(decodeURIComponent(m[1]));
}

main();
