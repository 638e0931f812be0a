// The console, for supervisors and admins: the live queue (pushed over /supervisor/ws),
// the routing rules (edit, validate in place, diff, simulate, apply, roll back), agents,
// customers, the audit trail with the retention (retention.js), mail kept aside
// (kept-aside.js), hours & service (service.js) and reports (reports.js). Everything goes through
// the public API.
"use strict";

const con = {
  tab: "live",
  snapshot: null,
  snapshotAt: 0,
  sl: null,
  ws: null,
  agents: [],
  active: null, // the active rules version
  problems: { errors: [], warnings: [] },
  simulation: null,
  auditFilter: {},
  stopped: false,
};

const main = $("#main");
const panes = {};

function start() {
  languageSwitcher($("#lang"), () => { if (session.token) { buildPanes(); show(con.tab); } });
  $("#logout").addEventListener("click", () => {
    con.stopped = true;
    if (con.ws) con.ws.close();
    session.token = null;
    $("#tabs").classList.add("hidden");
    $("#logout").classList.add("hidden");
    showLogin(main, tryToken);
  });
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => show(b.dataset.tab));
    b.addEventListener("keydown", (e) => {
      const tabs = [...document.querySelectorAll("#tabs button")];
      const i = tabs.indexOf(b);
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
        next.focus();
        show(next.dataset.tab);
      }
    });
  }
  document.addEventListener("keydown", (e) => {
    if (e.altKey && /^[1-9]$/.test(e.key) && session.token) {
      e.preventDefault();
      show(["live", "rules", "agents", "customers", "audit", "mail", "service", "canned", "reports"][Number(e.key) - 1]);
    }
  });
  if (session.token) tryToken(session.token).then((ok) => { if (ok !== true) showLogin(main, tryToken, ok); });
  else showLogin(main, tryToken);
  setInterval(tickAges, 1000);
  setInterval(() => { if (session.token && con.tab === "live") loadServiceLevel(); }, 60000);
}

async function tryToken(token) {
  const before = session.token;
  session.token = token;
  try {
    await api("GET", "/api/queue");
  } catch (e) {
    session.token = before === token ? null : before;
    if (e.status === 403) return t("supervisorOnly");
    if (e.status === 401) { session.token = null; return t("badToken"); }
    return e.message;
  }
  con.stopped = false;
  $("#tabs").classList.remove("hidden");
  $("#logout").classList.remove("hidden");
  buildPanes();
  show(location.hash.slice(1) || "live");
  connectLive();
  loadAgents();
  return true;
}

function buildPanes() {
  panes.live = h("section", { id: "pane-live", role: "tabpanel" });
  panes.rules = h("section", { id: "pane-rules", role: "tabpanel" });
  panes.agents = h("section", { id: "pane-agents", role: "tabpanel" });
  panes.customers = h("section", { id: "pane-customers", role: "tabpanel" });
  panes.audit = h("section", { id: "pane-audit", role: "tabpanel" });
  panes.mail = h("section", { id: "pane-mail", role: "tabpanel" });
  panes.service = h("section", { id: "pane-service", role: "tabpanel" });
  panes.canned = h("section", { id: "pane-canned", role: "tabpanel" });
  panes.reports = h("section", { id: "pane-reports", role: "tabpanel" });
  fill(main, Object.values(panes));
  drawLive();
  buildRules();
  drawAgents();
  buildCustomers();
  buildAudit();
  buildKeptAside(panes.mail);
  buildService(panes.service);
  buildReports(panes.reports);
}

function show(tab) {
  if (!panes[tab]) tab = "live";
  con.tab = tab;
  history.replaceState(null, "", `#${tab}`);
  for (const [name, el] of Object.entries(panes)) el.classList.toggle("hidden", name !== tab);
  for (const b of document.querySelectorAll("#tabs button")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    b.tabIndex = b.dataset.tab === tab ? 0 : -1;
  }
  if (tab === "rules" && !con.active) loadRules();
  if (tab === "audit") { loadAudit(); loadRetention(); }
  if (tab === "mail") loadKeptAside();
  if (tab === "service") loadService();
  if (tab === "canned") buildCanned(panes.canned);
  if (tab === "reports") loadReports();
  if (tab === "agents") loadAgents();
  if (tab === "live") loadServiceLevel();
}

// ---- live queue ----

function connectLive() {
  const ws = new WebSocket(wsUrl("/supervisor/ws"));
  con.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "login", token: session.token }));
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "notice") return onNotice(m);
    if (m.type !== "queue") return;
    con.snapshot = m;
    con.snapshotAt = Date.now();
    fill($("#link"), h("span", { class: "okay" }, t("connected")));
    drawLive();
  };
  ws.onclose = () => {
    if (con.ws !== ws || con.stopped) return;
    fill($("#link"), h("span", { class: "warning" }, t("reconnecting")));
    setTimeout(() => { if (!con.stopped) connectLive(); }, 2000);
  };
}

// A service target warned of or missed, or a complaint late: told at once, and the
// Hours & service tab read again when it is open.
function onNotice(m) {
  const what = m.complaint_id ? t("complaint") : t(`target_${m.target}`);
  toast(m.notice === "sla_warning" || m.notice === "complaint_warning"
    ? t("warnedNotice", { t: what }) : t("breachedSupervisor", { t: what }));
  if (con.tab === "service") loadService();
}

function tickAges() {
  if (!con.snapshot || con.tab !== "live") return;
  const extra = (Date.now() - con.snapshotAt) / 1000;
  for (const el of document.querySelectorAll("[data-age]")) el.textContent = span(Number(el.dataset.age) + extra);
}

function drawLive() {
  const pane = panes.live;
  if (!pane) return;
  const s = con.snapshot;
  if (!s) return fill(pane, h("p", { class: "muted" }, t("loading")));
  // A supervisor choosing from a list keeps it open: the view catches up when they leave it.
  if (document.activeElement && ["SELECT", "INPUT"].includes(document.activeElement.tagName) && pane.contains(document.activeElement)) {
    if (!con.liveDeferred) {
      con.liveDeferred = true;
      document.activeElement.addEventListener("blur", () => { con.liveDeferred = false; setTimeout(drawLive, 0); }, { once: true });
    }
    return;
  }
  const focusedId = document.activeElement && pane.contains(document.activeElement) ? document.activeElement.id : null;
  const counts = (obj) => h("table", {}, h("tbody", {}, Object.entries(obj || {}).map(([k, v]) =>
    h("tr", {}, h("td", {}, k === "(none)" ? t("none") : t(k)), h("td", {}, String(v))))));
  // Agents logged in, as the router sees them, then every other active agent, offline.
  const online = new Set((s.agents || []).map((a) => a.id));
  const agents = (s.agents || []).concat(con.agents.filter((a) => a.active !== false && !online.has(a.id))
    .map((a) => ({ id: a.id, name: a.name, presence: "offline", load: {} })));
  fill(pane,
    overloadBanner(s.admission),
    h("div", { class: "grid2" },
      h("div", { class: "card" },
        h("h2", {}, `${t("waiting")}: `, h("span", { id: "waiting-count" }, String(s.waiting))),
        h("h3", {}, t("byTier")),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("tier")), h("th", {}, t("waiting")), h("th", {}, t("oldest")))),
          h("tbody", {}, Object.entries(s.by_tier || {}).map(([tier, v]) =>
            h("tr", {}, h("td", {}, tierPill(tier)), h("td", {}, String(v.waiting)), h("td", {}, span(v.oldest_secs)))))),
        h("div", { class: "grid2" },
          h("div", {}, h("h3", {}, t("byChannel")), counts(s.by_channel)),
          h("div", {}, h("h3", {}, t("byTopic")), counts(s.by_topic)))),
      h("div", { class: "card" },
        h("h2", {}, `${t("serviceLevel")} (${t("last15")})`),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("tier")), h("th", {}, t("answered")), h("th", {}, t("withinTarget")), h("th", {}, t("target")))),
          h("tbody", {}, Object.entries(s.service_level || {}).map(([tier, v]) =>
            h("tr", {}, h("td", {}, tierPill(tier)), h("td", {}, String(v.answered)),
              h("td", {}, v.share === null || v.share === undefined ? "—" : `${Math.round(v.share * 100)}%`),
              h("td", {}, v.target_secs === null || v.target_secs === undefined ? "—" : `${v.target_secs} s`))))),
        idleWhileWaiting(s.idle_while_waiting),
        h("h3", {}, t("today")),
        serviceLevelChart())),
    h("div", { class: "card" },
      h("h2", {}, t("longestWaiting")),
      (s.oldest || []).length === 0 ? h("p", { class: "muted" }, t("noneWaiting")) : h("div", { class: "scroll" }, h("table", { id: "waiting-list" },
        h("thead", {}, h("tr", {}, h("th", {}, t("tier")), h("th", {}, t("channel")), h("th", {}, t("topic")), h("th", {}, t("age")), h("th", {}, t("moveTo")))),
        h("tbody", {}, s.oldest.map((w) => h("tr", {},
          h("td", {}, tierPill(w.tier)), h("td", {}, t(w.channel)), h("td", {}, w.topic || "—"),
          h("td", { dataset: { age: w.waited_secs } }, span(w.waited_secs)),
          h("td", {}, moveControl(w.id, agents)))))))),
    h("div", { class: "card" },
      h("h2", {}, t("agentStates")),
      h("div", { class: "scroll" }, h("table", { id: "agent-states" },
        h("thead", {}, h("tr", {}, h("th", {}, t("name")), h("th", {}, t("presence")), h("th", {}, t("holding")), h("th", {}, t("offered")), h("th", {}))),
        h("tbody", {}, agents.map((a) => h("tr", {},
          h("td", {}, a.name),
          h("td", {}, t(a.presence === "available" || a.presence === "away" ? a.presence : "offline"), a.wrap_up ? ` · ${t("wrapping")}` : ""),
          h("td", {}, Object.entries(a.load || {}).filter(([, n]) => n > 0).map(([c, n]) => `${t(c)} ${n}`).join(" · ") || "0"),
          h("td", {}, a.offered ? "●" : ""),
          h("td", {}, a.presence === "available" && awayControl(a.id)))))))),
    s.cluster && nodesCard(s.cluster));
  if (focusedId) { const el = document.getElementById(focusedId); if (el) el.focus(); }
}

/** Past capacity the server refuses some new contacts (admission control): how hard it
 * is pressed, how far behind the router is, and what it refused in the last minute, per
 * channel and tier. Nothing when it is not pressed and refused nothing. */
function overloadBanner(a) {
  if (!a || (!a.overloaded && !a.refused_last_minute)) return null;
  const per = Object.entries(a.refused_by_channel || {}).map(([channel, tiers]) =>
    `${t(channel)}: ` + Object.entries(tiers).map(([tier, n]) => `${(STRINGS[lang] && STRINGS[lang][`tier_${tier}`]) || t(tier)} ${n}`).join(", ")).join(" · ");
  return h("div", { class: "card error", id: "overload", role: "status" },
    h("strong", {}, a.overloaded ? t("overloaded") : t("recoveredLoad")),
    ` ${t("pressure")} ${Math.round(a.pressure * 100)}% · ${t("routerLag")} ${(a.lag_ms / 1000).toFixed(1)} s · `,
    `${t("refusedLastMinute")}: ${a.refused_last_minute}`, per ? ` (${per})` : "");
}

/** Agent time idle while contacts waited that those agents were not offered: what the
 * rings cost in service, over the live view's window, and the agents idle so now. */
function idleWhileWaiting(idle) {
  if (!idle) return null;
  const minutes = (idle.agent_secs / 60).toFixed(1);
  return h("p", { id: "idle-while-waiting", class: idle.agents_now > 0 ? "error small" : "muted small" },
    `${t("idleWhileWaiting")} (${t("last15")}): ${minutes} ${t("agentMinutes")} · ${t("idleNow")}: ${idle.agents_now}`);
}

// The cluster's nodes (PostgreSQL): which leads, and when each was last heard from.
function nodesCard(c) {
  return h("div", { class: "card", id: "nodes" },
    h("h2", {}, t("nodes")),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("node")), h("th", {}, t("role")), h("th", {}, t("lastSeen")))),
      h("tbody", {}, (c.nodes || []).map((n) => h("tr", {},
        h("td", {}, n.url, n.node === c.node ? ` (${t("thisNode")})` : ""),
        h("td", {}, n.role === "leader" ? h("strong", {}, t("leader")) : t("follower")),
        h("td", {}, clock(n.seen_at)))))));
}

function moveControl(interactionId, agents) {
  const select = h("select", { id: `move-${interactionId}`, "aria-label": t("moveTo") },
    h("option", { value: "" }, "—"),
    agents.filter((a) => a.presence === "available" || a.presence === "away").map((a) => h("option", { value: a.id }, a.name)));
  select.addEventListener("change", async () => {
    if (!select.value) return;
    try {
      await api("POST", `/api/interactions/${interactionId}/move`, { agent_id: select.value });
      toast(t("saved"));
    } catch (e) { toast(e.message); }
  });
  return select;
}

/** A "set away" control: the button opens a reason field in place; Enter sets it. */
function awayControl(id) {
  const button = h("button", { type: "button" }, t("setAway"));
  button.addEventListener("click", () => {
    const reason = h("input", { size: 14, placeholder: t("reason"), "aria-label": t("reason") });
    const ok = h("button", { type: "submit", class: "primary" }, t("setAway"));
    const cancel = h("button", { type: "button" }, t("cancel"));
    const form = h("form", { class: "row" }, reason, ok, cancel);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const r = reason.value.trim();
        await api("POST", `/api/agents/${id}/away`, r ? { reason: r } : {});
        toast(t("saved"));
      } catch (err) { toast(err.message); }
      form.replaceWith(button);
    });
    cancel.addEventListener("click", () => { form.replaceWith(button); button.focus(); });
    button.replaceWith(form);
    reason.focus();
  });
  return button;
}

async function loadServiceLevel() {
  try {
    con.sl = await api("GET", "/api/queue/service-level?hours=24");
    drawLive();
  } catch (_) { /* the live view still shows; the chart waits for the next minute */ }
}

const TIER_COLOURS = ["#7a3fb5", "#1f5fbf", "#4b6b50", "#a35a00", "#b3261e", "#0f7c8a"];

/** Each tier's service level per hour as a line over the day (SVG, no library). */
function serviceLevelChart() {
  const sl = con.sl;
  if (!sl) return h("p", { class: "muted" }, t("loading"));
  const W = 480, H = 160, L = 34, B = 20;
  const n = sl.hours.length;
  const x = (i) => L + (i + 0.5) * ((W - L - 4) / n);
  const y = (v) => 4 + (1 - v) * (H - B - 8);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("today"));
  const add = (tag, attrs, text) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text) el.textContent = text;
    svg.append(el);
  };
  for (const v of [0, 0.5, 1]) {
    add("line", { x1: L, x2: W, y1: y(v), y2: y(v), stroke: "#d9dde5" });
    add("text", { x: 2, y: y(v) + 4 }, `${v * 100}%`);
  }
  for (let i = 0; i < n; i += 4) add("text", { x: x(i) - 12, y: H - 4 }, new Date(sl.hours[i]).getHours() + ":00");
  const legend = [];
  Object.entries(sl.tiers).forEach(([tier, v], k) => {
    const colour = TIER_COLOURS[k % TIER_COLOURS.length];
    const pts = v.hours.map((p, i) => (p.share === null ? null : `${x(i)},${y(p.share)}`));
    let run = [];
    const flush = () => { if (run.length) add("polyline", { points: run.join(" "), fill: "none", stroke: colour, "stroke-width": 2 }); run = []; };
    pts.forEach((p) => { if (p) run.push(p); else flush(); });
    flush();
    v.hours.forEach((p, i) => { if (p.share !== null) add("circle", { cx: x(i), cy: y(p.share), r: 2.5, fill: colour }); });
    legend.push(h("span", {}, h("span", { class: "swatch", style: `background:${colour}` }), `${tier} (${t("target")} ${v.target_secs ?? "—"} s)`));
  });
  return h("div", {}, svg, h("div", { class: "legend" }, legend));
}

// ---- routing rules ----

let editor, gutter, problemsEl, diffEl, simEl, versionsEl, commentEl, rulesTitle;

function buildRules() {
  editor = h("textarea", { id: "rules-editor", spellcheck: "false", "aria-label": t("rules"), wrap: "off" });
  gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  problemsEl = h("div", { id: "rules-problems", "aria-live": "polite" });
  diffEl = h("div", { id: "rules-diff" });
  simEl = h("div", { id: "simulation" });
  versionsEl = h("div", { id: "rule-versions" });
  commentEl = h("input", { id: "rules-comment", placeholder: t("comment"), "aria-label": t("comment"), size: 30 });
  rulesTitle = h("h2", {}, t("rules"));
  const hours = h("select", { id: "sim-hours", "aria-label": t("simWindow") },
    [1, 8, 24, 72, 168].map((n) => h("option", { value: n, selected: n === 24 }, `${n} h`)));
  let pending;
  editor.addEventListener("input", () => {
    drawGutter();
    clearTimeout(pending);
    pending = setTimeout(() => validate(true), 700);
  });
  editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
  editor.addEventListener("keydown", (e) => {
    if (e.key === "s" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); validate(); }
  });
  fill(panes.rules,
    h("div", { class: "card" },
      rulesTitle,
      h("div", { class: "editor" }, gutter, editor),
      h("div", { class: "row", style: "margin-top:.5rem" },
        h("button", { type: "button", id: "validate", onclick: () => validate() }, t("validate")),
        h("label", {}, t("simWindow"), hours),
        h("button", { type: "button", id: "simulate", onclick: () => simulate(Number(hours.value)) }, t("simulate")),
        commentEl,
        h("button", { type: "button", class: "primary", id: "apply", onclick: () => applyRules() }, t("apply"))),
      problemsEl),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, t("diff")), diffEl),
      h("div", { class: "card" }, h("h2", {}, t("versions")), versionsEl)),
    h("div", { class: "card" }, h("h2", {}, t("simulate")), simEl));
  if (con.active) { editor.value = con.draft ?? con.active.document; drawGutter(); drawProblems(); drawDiff(); drawSimulation(); loadVersions(); }
}

async function loadRules() {
  try {
    con.active = await api("GET", "/api/routing/rules");
    editor.value = con.active.document;
    fill(rulesTitle, `${t("rules")} · ${t("version")} ${con.active.version}`);
    drawGutter();
    con.problems = { errors: [], warnings: [] };
    drawProblems();
    drawDiff();
    loadVersions();
  } catch (e) { fill(problemsEl, h("p", { class: "error" }, e.message)); }
}

/** Shows the first error's line in the editor. */
function showFirstError() {
  for (const e of con.problems.errors) {
    const n = locate(editor.value, e);
    if (n) return goToLine(n);
  }
}

async function validate(quiet) {
  con.draft = editor.value;
  try {
    const r = await api("POST", "/api/routing/rules/validate", editor.value, { type: "application/toml" });
    con.problems = { errors: r.errors || [], warnings: r.warnings || [], checked: true };
  } catch (e) {
    con.problems = { errors: (e.body && e.body.errors) || [e.message], warnings: [], checked: true };
  }
  drawProblems();
  drawDiff();
  if (!quiet) showFirstError();
  return con.problems.errors.length === 0;
}

async function applyRules() {
  try {
    const q = commentEl.value.trim() ? `?comment=${encodeURIComponent(commentEl.value.trim())}` : "";
    const r = await api("PUT", `/api/routing/rules${q}`, editor.value, { type: "application/toml" });
    con.problems = { errors: [], warnings: r.warnings || [], checked: true, applied: r.version };
    commentEl.value = "";
    con.draft = undefined;
    await loadRules();
    con.problems = { errors: [], warnings: r.warnings || [], checked: true, applied: r.version };
    drawProblems();
  } catch (e) {
    con.problems = { errors: (e.body && e.body.errors) || [e.message], warnings: (e.body && e.body.warnings) || [], checked: true };
    drawProblems();
    drawDiff();
    showFirstError();
  }
}

/**
 * The line of the document a problem is about: a parse error names it; a rule error
 * names a path (`tiers.high.max_wait_secs`, `rings[1].steps[0].timeout_secs`), found by
 * reading the document's tables, keys and inline arrays.
 */
function locate(doc, message) {
  const parse = /line (\d+)/.exec(message);
  if (parse) return Number(parse[1]);
  // The path of the key at fault, wherever the message names it: after the document's
  // name ("the rules: offer.timeout_secs: invalid type…"), or first. A misspelled key is
  // found where it is written.
  const where = linesByPath(doc);
  const paths = [...message.matchAll(/(?:^|: )([A-Za-z_][\w\-]*(?:\[\d+\])?(?:\.[\w\-]+(?:\[\d+\])?)*)\s*:/g)].map((m) => m[1]);
  for (let path of paths) {
    while (path) {
      if (where.has(path)) return where.get(path);
      const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      path = cut > 0 ? path.slice(0, cut) : "";
    }
  }
  return null;
}

function linesByPath(doc) {
  const where = new Map();
  const put = (p, n) => { if (!where.has(p)) where.set(p, n); };
  const counts = {};
  let table = "";
  let array = null; // an inline array spread over lines: its path and next index
  const inlineKeys = (prefix, text, n) => {
    for (const k of text.matchAll(/([A-Za-z_][\w\-]*)\s*=/g)) put(`${prefix}.${k[1]}`, n);
  };
  doc.split("\n").forEach((raw, i) => {
    const n = i + 1;
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    if (array) {
      if (line.startsWith("]")) { array = null; return; }
      for (const item of line.matchAll(/\{[^}]*\}/g)) {
        const p = `${array.path}[${array.next++}]`;
        put(p, n);
        inlineKeys(p, item[0], n);
      }
      return;
    }
    let header = /^\[\[\s*([\w.\-]+)\s*\]\]/.exec(line);
    if (header) {
      const name = header[1];
      counts[name] = (counts[name] ?? -1) + 1;
      table = `${name}[${counts[name]}]`;
      put(name, n);
      put(table, n);
      return;
    }
    header = /^\[\s*([\w.\-]+)\s*\]/.exec(line);
    if (header) {
      table = header[1];
      const parts = table.split(".");
      for (let k = 1; k <= parts.length; k++) put(parts.slice(0, k).join("."), n);
      return;
    }
    const kv = /^([A-Za-z_][\w\-]*)\s*=\s*(.*)$/.exec(line);
    if (!kv) return;
    const path = table ? `${table}.${kv[1]}` : kv[1];
    put(path, n);
    const value = kv[2];
    if (value.startsWith("{")) inlineKeys(path, value, n);
    if (value.startsWith("[")) {
      let next = 0;
      for (const item of value.matchAll(/\{[^}]*\}/g)) {
        const p = `${path}[${next++}]`;
        put(p, n);
        inlineKeys(p, item[0], n);
      }
      if (!value.includes("]") || value.lastIndexOf("]") < value.lastIndexOf("{")) array = { path, next };
    }
  });
  return where;
}

function drawGutter() {
  const lines = editor.value.split("\n").length;
  const marks = new Map();
  for (const e of con.problems.errors) { const n = locate(editor.value, e); if (n) marks.set(n, "bad"); }
  for (const w of con.problems.warnings) { const n = locate(editor.value, w); if (n && !marks.has(n)) marks.set(n, "warn"); }
  fill(gutter, Array.from({ length: lines }, (_, i) => {
    const n = i + 1;
    return h("div", { class: marks.get(n) || "", "data-line": n }, String(n));
  }));
  gutter.scrollTop = editor.scrollTop;
}

function goToLine(n) {
  const lines = editor.value.split("\n");
  const start = lines.slice(0, n - 1).reduce((a, l) => a + l.length + 1, 0);
  editor.focus();
  editor.setSelectionRange(start, start + (lines[n - 1] || "").length);
  const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 19;
  editor.scrollTop = Math.max(0, (n - 4) * lineHeight);
}

function drawProblems() {
  drawGutter();
  const p = con.problems;
  const item = (cls, text) => {
    const n = locate(editor.value, text);
    return h("li", { class: cls }, n ? h("button", { type: "button", class: "link", onclick: () => goToLine(n) }, t("line", { n })) : null, n ? ": " : "", text);
  };
  fill(problemsEl,
    p.applied && h("p", { class: "okay", id: "rules-applied" }, t("applied", { v: p.applied })),
    p.checked && p.errors.length === 0 && !p.applied && h("p", { class: "okay" }, t("valid")),
    p.errors.length > 0 && h("div", {}, h("h3", { class: "error" }, t("errors")), h("ul", { class: "problems", id: "rules-errors" }, p.errors.map((e) => item("error", e)))),
    p.warnings.length > 0 && h("div", {}, h("h3", { class: "warning" }, t("warnings")), h("ul", { class: "problems" }, p.warnings.map((w) => item("warning", w)))));
}

/** A line diff (longest common subsequence), with two lines of context around changes. */
function lineDiff(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { out.push(["+", y[j]]); j++; }
    else { out.push(["-", x[i]]); i++; }
  }
  const near = out.map((_, k) => out.slice(Math.max(0, k - 2), k + 3).some(([s]) => s !== " "));
  return out.filter((_, k) => near[k]);
}

function drawDiff() {
  if (!con.active) return;
  if (editor.value.length + con.active.document.length > 400000) return fill(diffEl, h("p", { class: "muted" }, "—"));
  const d = lineDiff(con.active.document, editor.value);
  if (!d.some(([s]) => s !== " ")) return fill(diffEl, h("p", { class: "muted" }, t("noChanges")));
  fill(diffEl, h("div", { class: "diff" }, d.map(([s, l]) =>
    h("div", { class: s === "+" ? "add" : s === "-" ? "del" : "" }, `${s} ${l}`))));
}

async function loadVersions() {
  try {
    const r = await api("GET", "/api/routing/rules/versions");
    const list = r.versions || r;
    fill(versionsEl, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, t("version")), h("th", {}, t("when")), h("th", {}, t("actor")), h("th", {}, t("comment")), h("th", {}))),
      h("tbody", {}, list.map((v) => h("tr", {},
        h("td", {}, String(v.version)), h("td", {}, clock(v.created_at)),
        h("td", {}, (con.agents.find((a) => a.id === v.actor) || {}).name || v.actor || ""), h("td", {}, v.comment || ""),
        h("td", {}, con.active && v.version !== con.active.version &&
          h("button", { type: "button", onclick: () => rollback(v.version) }, t("rollback"))))))));
  } catch (e) { fill(versionsEl, h("p", { class: "error" }, e.message)); }
}

async function rollback(version) {
  if (!confirm(t("confirmRollback", { v: version }))) return;
  try {
    const r = await api("POST", "/api/routing/rules/rollback", { version });
    await loadRules();
    con.problems = { errors: [], warnings: r.warnings || [], checked: true, applied: r.version };
    drawProblems();
  } catch (e) { toast(e.message); }
}

async function simulate(hours) {
  fill(simEl, h("p", { class: "muted" }, t("loading")));
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600 * 1000);
  try {
    con.simulation = await api("POST", "/api/routing/simulate", { from: from.toISOString(), to: to.toISOString(), rules: editor.value });
  } catch (e) {
    con.simulation = { failed: e.message };
  }
  drawSimulation();
}

function drawSimulation() {
  const s = con.simulation;
  if (!s) return fill(simEl);
  if (s.failed) return fill(simEl, h("p", { class: "error", id: "simulation-error" }, s.failed));
  const columns = [["recorded", s.recorded], ["active", s.active], ["candidate", s.candidate], ["fifo", s.fifo]].filter(([, r]) => r);
  const tiers = Object.keys(s.active.by_tier || {});
  const pct = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`);
  const secs = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} s`);
  const rows = [];
  for (const tier of tiers.concat(["overall"])) {
    for (const [name, r] of columns) {
      const f = tier === "overall" ? r.overall : (r.by_tier || {})[tier];
      if (!f) continue;
      rows.push(h("tr", {}, h("td", {}, tier === "overall" ? "∑" : tierPill(tier)), h("td", {}, t(name)),
        h("td", {}, String(f.contacts)), h("td", {}, pct(f.service_level)), h("td", {}, secs(f.mean_wait_secs)),
        h("td", {}, secs(f.p95_wait_secs)), h("td", {}, secs(f.longest_wait_secs)), h("td", {}, pct(f.abandonment_rate))));
    }
  }
  fill(simEl,
    h("p", { class: "muted small" }, `${s.contacts} ${t("contacts")} · ${t("agents")} ${s.agents_on_duty} · ${s.elapsed_ms} ms`),
    // Tiers without a target have no service level to draw.
    simulationChart(tiers.filter((tier) => columns.some(([, r]) => ((r.by_tier || {})[tier] || {}).service_level != null)), columns),
    h("div", { class: "scroll" }, h("table", { id: "simulation-table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("tier")), h("th", {}), h("th", {}, t("contacts")), h("th", {}, t("serviceLevel")),
        h("th", {}, t("meanWait")), h("th", {}, t("p95Wait")), h("th", {}, t("longest")), h("th", {}, t("abandonment")))),
      h("tbody", {}, rows))),
    h("p", { class: "muted small", id: "simulation-idle" }, `${t("idleWhileWaiting")}: `,
      columns.filter(([, r]) => r.idle_while_waiting_secs !== null && r.idle_while_waiting_secs !== undefined)
        .map(([name, r]) => `${t(name)} ${(r.idle_while_waiting_secs / 60).toFixed(1)} ${t("agentMinutes")}`).join(" · ")),
    // What the calendars of each rule set kept waiting for an opening.
    columns.some(([, r]) => r.held_for_opening) ? h("p", { class: "muted small", id: "simulation-held" }, `${t("heldForOpening")}: `,
      columns.filter(([, r]) => r.held_for_opening !== null && r.held_for_opening !== undefined)
        .map(([name, r]) => `${t(name)} ${r.held_for_opening}`).join(" · ")) : null);
}

/** Service level per tier, one bar per column (recorded, active, candidate, FIFO). */
function simulationChart(tiers, columns) {
  const W = 480, H = 150, B = 20;
  const colours = { recorded: "#8a94a6", active: "#1f5fbf", candidate: "#1c7c3a", fifo: "#b26a00" };
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("serviceLevel"));
  const group = (W - 20) / Math.max(1, tiers.length);
  const bar = Math.min(40, (group - 16) / Math.max(1, columns.length));
  tiers.forEach((tier, i) => {
    columns.forEach(([name, r], k) => {
      const v = ((r.by_tier || {})[tier] || {}).service_level ?? 0;
      const hgt = v * (H - B - 10);
      const rect = document.createElementNS(svg.namespaceURI, "rect");
      Object.entries({ x: 10 + i * group + 8 + k * bar, y: H - B - hgt, width: bar - 3, height: hgt, fill: colours[name] })
        .forEach(([a, b]) => rect.setAttribute(a, b));
      const title = document.createElementNS(svg.namespaceURI, "title");
      title.textContent = `${tier} · ${t(name)}: ${Math.round(v * 100)}%`;
      rect.append(title);
      svg.append(rect);
    });
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", 10 + i * group + 8);
    label.setAttribute("y", H - 5);
    label.textContent = tier;
    svg.append(label);
  });
  return h("div", {}, svg, h("div", { class: "legend" }, columns.map(([name]) =>
    h("span", {}, h("span", { class: "swatch", style: `background:${colours[name]}` }), t(name)))));
}

// ---- agents ----

async function loadAgents() {
  // A failed load says so, and keeps what was shown: an empty table would read as
  // "no agents".
  try {
    con.agents = (await api("GET", "/api/agents")).agents || [];
    con.agentsError = null;
  } catch (e) { con.agentsError = e.message || String(e); }
  drawAgents();
  drawLive();
}

function agentForm(a, onSave) {
  const v = a || {};
  const cap = v.capacity || {};
  const f = {
    name: h("input", { name: "name", value: v.name || "", required: true, size: 16 }),
    email: h("input", { name: "email", value: v.email || "", size: 18 }),
    extension: h("input", { name: "extension", value: v.extension || "", size: 6 }),
    level: h("input", { name: "level", type: "number", min: 1, max: 10, value: v.level || 1, style: "width:4rem" }),
    skills: h("input", { name: "skills", value: (v.skills || []).join(", "), size: 18 }),
    role: h("select", { name: "role" }, ["agent", "supervisor", "admin"].map((r) => h("option", { value: r, selected: (v.role || "agent") === r }, r))),
    phone: h("input", { name: "cap-phone", type: "number", min: 0, value: cap.phone ?? "", style: "width:4rem" }),
    chat: h("input", { name: "cap-chat", type: "number", min: 0, value: cap.chat ?? "", style: "width:4rem" }),
    emailCap: h("input", { name: "cap-email", type: "number", min: 0, value: cap.email ?? "", style: "width:4rem" }),
  };
  const problem = h("span", { class: "error", role: "alert" });
  const save = h("button", { type: "submit", class: "primary" }, a ? t("save") : t("create"));
  const form = h("form", { class: "row" },
    h("label", {}, t("name"), f.name), h("label", {}, "Email", f.email), h("label", {}, t("extension"), f.extension),
    h("label", {}, t("level"), f.level), h("label", {}, t("skills"), f.skills), h("label", {}, t("role"), f.role),
    h("label", {}, `${t("phone")} ≤`, f.phone), h("label", {}, `${t("chat")} ≤`, f.chat), h("label", {}, `${t("email")} ≤`, f.emailCap),
    save, problem);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const num = (el) => (el.value === "" ? undefined : Number(el.value));
    const capacity = { phone: num(f.phone), chat: num(f.chat), email: num(f.emailCap) };
    const body = {
      name: f.name.value.trim(), email: f.email.value.trim() || null, extension: f.extension.value.trim() || null,
      level: Number(f.level.value), role: f.role.value,
      skills: f.skills.value.split(/[,，\s]+/).map((s) => s.trim()).filter(Boolean),
      capacity: JSON.parse(JSON.stringify(capacity)),
    };
    try {
      await onSave(body);
      fill(problem);
      // A new agent made: the form is ready for the next one.
      if (!a) form.reset();
    } catch (err) { fill(problem, err.message); }
  });
  return form;
}

/** The agents tab: the form to create one, built once, and the list, redrawn as it changes. */
function drawAgents() {
  const pane = panes.agents;
  if (!pane) return;
  if (!pane.firstChild) {
    fill(pane,
      h("div", { class: "card" }, h("h2", {}, `${t("create")} · ${t("agents")}`),
        agentForm(null, async (body) => {
          if (!body.email) delete body.email;
          if (!body.extension) delete body.extension;
          const r = await api("POST", "/api/agents", body);
          fill($("#agent-token"), t("newToken", { t: r.token }));
          await loadAgents();
        }),
        h("p", { id: "agent-token", class: "okay", role: "status" })),
      h("div", { class: "card" }, h("h2", {}, t("agents")),
        h("div", { class: "scroll" }, h("table", { id: "agents-table" },
          h("thead", {}, h("tr", {}, h("th", {}, t("name")), h("th", {}, t("role")), h("th", {}, t("level")), h("th", {}, t("skills")),
            h("th", {}, t("extension")), h("th", {}))),
          h("tbody", {})))));
  }
  const problem = con.agentsError
    ? [h("tr", { id: "agents-error" }, h("td", { colspan: 6 },
        h("span", { class: "error", role: "alert" }, t("agentsNotLoaded", { e: con.agentsError })), " ",
        h("button", { type: "button", onclick: () => loadAgents() }, t("tryAgain"))))]
    : [];
  fill($("#agents-table tbody", pane), problem, (con.agents || []).map((a) => agentRow(a)));
}

function agentRow(a) {
  const row = h("tr", { class: a.active === false ? "muted" : "" },
    h("td", {}, a.name), h("td", {}, a.role), h("td", {}, String(a.level)), h("td", {}, (a.skills || []).join(", ")),
    h("td", {}, a.extension || "—"),
    h("td", {}, a.active !== false && h("div", { class: "row" },
      h("button", { type: "button", onclick: () => {
        row.replaceWith(h("tr", {}, h("td", { colspan: 6 }, agentForm(a, async (body) => {
          await api("PUT", `/api/agents/${a.id}`, body);
          await loadAgents();
          toast(t("saved"));
        }))));
      } }, t("edit")),
      h("button", { type: "button", onclick: async () => {
        try {
          const r = await api("POST", `/api/agents/${a.id}/token`);
          fill($("#agent-token"), `${a.name}: `, t("newToken", { t: r.token }));
        } catch (e) { toast(e.message); }
      } }, t("resetToken")),
      awayControl(a.id),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(t("confirmRemove"))) return;
        try { await api("DELETE", `/api/agents/${a.id}`); await loadAgents(); } catch (e) { toast(e.message); }
      } }, t("remove")))));
  return row;
}

// ---- customers ----

let customerEl;

function buildCustomers() {
  const kind = h("select", { id: "customer-kind", "aria-label": t("kind") },
    h("option", { value: "q" }, t("anything")),
    ["email", "phone", "external_id", "visitor_id"].map((k) => h("option", { value: k }, k)));
  const value = h("input", { id: "customer-value", size: 28, "aria-label": t("search"), placeholder: "Mei Chen · mei.chen@example.com · +8613800000000" });
  value.addEventListener("input", () => {
    const v = value.value.trim();
    if (v.includes("@")) kind.value = "email";
    else if (/^\+?[\d\s\-()]{6,}$/.test(v)) kind.value = "phone";
  });
  customerEl = h("div", { id: "customer" });
  const search = h("form", { class: "row" }, h("label", {}, t("kind"), kind), h("label", {}, t("lookup"), value),
    h("button", { type: "submit", class: "primary" }, t("search")));
  search.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = value.value.trim();
    // The customer shown before is cleared at once: a save never reaches the last search's customer.
    fill(customerEl, h("p", { class: "muted" }, t("loading")));
    try {
      if (kind.value !== "q") {
        drawCustomer(await api("GET", `/api/customers?${encodeURIComponent(kind.value)}=${encodeURIComponent(text)}`));
        return;
      }
      // Part of a name, or the start of any identity: one match opens, several are listed.
      const found = (await api("GET", `/api/customers/search?q=${encodeURIComponent(text)}`)).customers;
      if (found.length === 1) return drawCustomer(await api("GET", `/api/customers/${found[0].id}`));
      if (!found.length) return fill(customerEl, h("p", { class: "muted" }, t("noneFound")));
      fill(customerEl, h("p", { class: "small" }, t("pick")),
        h("ul", { id: "customer-matches" }, found.map((c) => {
          const open = h("button", { type: "button", class: "link" }, c.name || t("unknown"));
          open.addEventListener("click", async () => {
            try { drawCustomer(await api("GET", `/api/customers/${c.id}`)); } catch (err) { toast(err.message); }
          });
          return h("li", {}, open, h("span", { class: "muted small" }, " · ", c.identities.map((x) => x.value).join(" · ")));
        })));
    } catch (err) { fill(customerEl, h("p", { class: "error" }, err.message)); }
  });
  const file = h("input", { type: "file", id: "import-file", accept: ".csv,text/csv" });
  const progress = h("progress", { max: 1, value: 0, class: "hidden", id: "import-progress" });
  const result = h("div", { id: "import-result", "aria-live": "polite" });
  const go = h("button", { type: "button", class: "primary" }, t("import"));
  go.addEventListener("click", () => importCsv(file, progress, result));
  fill(panes.customers,
    h("div", { class: "card" }, h("h2", {}, t("customers")), search, customerEl),
    newCustomerCard(),
    consoleSearch(),
    h("div", { class: "card" }, h("h2", {}, t("import")), h("div", { class: "row" }, file, go), progress, result));
}

/** A customer made by hand: a name, an email and a phone (either or both), a tier. */
function newCustomerCard() {
  const name = h("input", { name: "new-name", size: 20, "aria-label": t("name") });
  const email = h("input", { name: "new-email", type: "email", size: 24, "aria-label": "email" });
  const phone = h("input", { name: "new-phone", size: 16, "aria-label": t("phone") });
  const tier = h("input", { name: "new-tier", size: 8, "aria-label": t("tier"), placeholder: t("automatic") });
  const problem = h("span", { class: "error small", role: "alert" });
  const form = h("form", { class: "row", id: "new-customer" },
    h("label", {}, t("name"), name), h("label", {}, "Email", email), h("label", {}, t("phone"), phone),
    h("label", {}, t("tier"), tier), h("button", { type: "submit", class: "primary" }, t("create")), problem);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const identities = [];
    if (email.value.trim()) identities.push({ kind: "email", value: email.value.trim() });
    if (phone.value.trim()) identities.push({ kind: "phone", value: phone.value.trim() });
    const body = { identities };
    if (name.value.trim()) body.name = name.value.trim();
    if (tier.value.trim()) body.tier = tier.value.trim();
    try {
      const c = await api("POST", "/api/customers", body);
      fill(problem);
      form.reset();
      drawCustomer(await api("GET", `/api/customers/${c.id}`));
      toast(t("saved"));
    } catch (err) { fill(problem, err.message); }
  });
  return h("div", { class: "card" }, h("h2", {}, t("newCustomer")), form);
}

function drawCustomer(c) {
  const tier = h("select", { name: "tier", "aria-label": t("explicitTier") },
    h("option", { value: "" }, t("automatic")),
    ["high", "medium", "low"].concat(c.explicit_tier && !["high", "medium", "low"].includes(c.explicit_tier) ? [c.explicit_tier] : [])
      .map((x) => h("option", { value: x, selected: c.explicit_tier === x }, x)));
  const owner = h("select", { name: "owner", "aria-label": t("owner") },
    h("option", { value: "" }, "—"),
    con.agents.filter((a) => a.active !== false).map((a) => h("option", { value: a.id, selected: c.owner === a.id }, a.name)));
  const save = h("button", { type: "button", class: "primary" }, t("save"));
  save.addEventListener("click", async () => {
    try {
      const r = await api("PUT", `/api/customers/${c.id}`, { tier: tier.value || null, owner: owner.value || null });
      drawCustomer(r);
      toast(t("saved"));
    } catch (e) { toast(e.message); }
  });
  const p = c.purchases || {};
  fill(customerEl,
    h("h3", {}, c.name || t("unknown"), " ", tierPill(c.tier.tier)),
    h("p", { class: "small" }, `${t("why")}: ${c.tier.reason}`),
    h("p", { class: "small" }, `${t("identities")}: `, (c.identities || []).map((x) => `${x.kind} ${x.value}`).join(" · ")),
    h("p", { class: "small" }, `${t("lifetime")}: ${c.lifetime_value || "—"} · ${t("purchases")}: ${p.count || 0} (${p.total || 0})`),
    h("div", { class: "row" }, h("label", {}, t("explicitTier"), tier), h("label", {}, t("owner"), owner), save));
}

function importCsv(file, progress, result) {
  const f = file.files && file.files[0];
  if (!f) return;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/customers/import");
  xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
  xhr.setRequestHeader("Content-Type", "text/csv");
  progress.classList.remove("hidden");
  progress.value = 0;
  fill(result, t("uploading"));
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = e.loaded / e.total; };
  xhr.onload = () => {
    progress.value = 1;
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* shown as status below */ }
    if (xhr.status >= 200 && xhr.status < 300) {
      fill(result, h("p", { class: "okay" }, t("importDone", { n: body.rows, c: body.created, u: body.updated })));
    } else {
      fill(result, h("p", { class: "error" }, body.message || `HTTP ${xhr.status}`),
        (body.errors || []).length > 0 && h("table", { id: "import-errors" },
          h("thead", {}, h("tr", {}, h("th", {}, t("row")), h("th", {}, t("field")), h("th", {}, t("problem")))),
          h("tbody", {}, body.errors.map((e) => h("tr", {}, h("td", {}, String(e.row)), h("td", {}, e.field || ""), h("td", {}, e.message))))));
    }
  };
  xhr.onerror = () => fill(result, h("p", { class: "error" }, t("reconnecting")));
  xhr.send(f);
}

// ---- audit ----

let auditEl, auditMore;

function buildAudit() {
  const inputs = {
    actor: h("input", { name: "actor", size: 12 }),
    action: h("input", { name: "action", size: 14, placeholder: "rules.apply" }),
    target_kind: h("input", { name: "target_kind", size: 10, placeholder: "agent" }),
    since: h("input", { name: "since", type: "date" }),
    until: h("input", { name: "until", type: "date" }),
  };
  const form = h("form", { class: "row", id: "audit-filter" },
    h("label", {}, t("actor"), inputs.actor), h("label", {}, t("action"), inputs.action),
    h("label", {}, t("auditTarget"), inputs.target_kind), h("label", {}, t("since"), inputs.since), h("label", {}, t("until"), inputs.until),
    h("button", { type: "submit", class: "primary" }, t("filter")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = {};
    for (const [k, el] of Object.entries(inputs)) {
      if (!el.value) continue;
      f[k] = k === "since" ? new Date(`${el.value}T00:00:00`).toISOString()
        : k === "until" ? new Date(`${el.value}T23:59:59`).toISOString() : el.value.trim();
    }
    con.auditFilter = f;
    loadAudit();
  });
  auditEl = h("tbody", {});
  auditMore = h("button", { type: "button", class: "hidden" }, t("more"));
  fill(panes.audit, h("div", { class: "card" }, h("h2", {}, t("audit")), form,
    h("div", { class: "scroll" }, h("table", { id: "audit-table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("when")), h("th", {}, t("actor")), h("th", {}, t("action")), h("th", {}, t("auditTarget")), h("th", {}, t("change")))),
      auditEl)), auditMore), buildRetention());
}

async function loadAudit(before) {
  const q = new URLSearchParams({ ...con.auditFilter, limit: "50" });
  if (before) q.set("before", before);
  try {
    const r = await api("GET", `/api/audit?${q}`);
    if (!before) auditEl.replaceChildren();
    const name = (id) => (con.agents.find((a) => a.id === id) || {}).name || id;
    for (const e of r.entries) {
      auditEl.append(h("tr", {}, h("td", {}, clock(e.at)), h("td", {}, name(e.actor)), h("td", {}, e.action),
        h("td", {}, `${e.target_kind} ${e.target_id || ""}`),
        h("td", { class: "small" }, e.after ? JSON.stringify(e.after).slice(0, 160) : "")));
    }
    auditMore.classList.toggle("hidden", !r.next_before);
    auditMore.onclick = () => loadAudit(r.next_before);
  } catch (e) { fill(auditEl, h("tr", {}, h("td", { colspan: 5, class: "error" }, e.message))); }
}

window.addEventListener("DOMContentLoaded", start);
