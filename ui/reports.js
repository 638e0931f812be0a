// The console's "Reports" tab: the centre's figures over a date range, per hour, day or
// week (in the centre's time zone or one chosen) and per tier, channel, topic, team or
// agent, from GET /api/reports: a bar chart of
// one figure (SVG, no library) and the table of all of them. A bar, clicked, lists the
// contacts behind it (GET /api/reports/interactions); the report and every contact of
// the range download as CSV.
"use strict";

Object.assign(STRINGS.en, {
  reports: "Reports", rangeFrom: "From", rangeTo: "To", by: "By", slice: "Split by",
  by_hour: "Hour", by_day: "Day", by_week: "Week", slice_tier: "Tier", slice_channel: "Channel",
  slice_topic: "Topic", slice_agent: "Agent", slice_team: "Team", figure: "Figure", show: "Show",
  timeZone: "Time zone", centreZone: "the centre's",
  reportZone: "Buckets are in {tz}; weeks start on Monday.", notUpToDate: "The latest events are still being counted.",
  downloadReport: "Report as CSV", downloadContacts: "Every contact as CSV", noData: "Nothing in this range.",
  bucket: "Bucket", repReceived: "Received", repAnswered: "Answered", repAbandoned: "Abandoned",
  meanAbandonedWait: "Mean wait of abandoned", asa: "Average speed of answer",
  meanHandling: "Mean handling", transfers: "Transfers", callbacks: "Callbacks", csat: "CSAT (count)",
  contactsBehind: "Contacts behind {what}", moreContacts: "More contacts than shown: narrow the range.",
  created: "Arrived", answeredAt: "Answered", completedAt: "Completed", waitCol: "Wait", outcome: "Outcome",
  clickBar: "Click a bar to list its contacts.",
  meanWrapUp: "Mean wrap-up", slaAttainment: "SLA attained", available: "Available", away: "Away",
  occupancy: "Occupancy",
  occupancyHelp: "Occupancy: handling and wrap-up time of the contacts completed, over the time available.",
});
Object.assign(STRINGS.zh, {
  reports: "报表", rangeFrom: "开始", rangeTo: "结束", by: "按", slice: "拆分",
  by_hour: "小时", by_day: "天", by_week: "周", slice_tier: "等级", slice_channel: "渠道",
  slice_topic: "话题", slice_agent: "坐席", slice_team: "团队", figure: "指标", show: "显示",
  timeZone: "时区", centreZone: "中心默认",
  reportZone: "时间段按 {tz} 划分；每周从星期一开始。", notUpToDate: "最新的事件仍在统计中。",
  downloadReport: "报表 CSV", downloadContacts: "全部联系 CSV", noData: "此范围内没有数据。",
  bucket: "时间段", repReceived: "接入", repAnswered: "已接听", repAbandoned: "放弃",
  meanAbandonedWait: "放弃前平均等待", asa: "平均应答速度",
  meanHandling: "平均处理时长", transfers: "转接", callbacks: "回拨", csat: "满意度（份数）",
  contactsBehind: "{what} 的联系", moreContacts: "联系多于显示的数量：请缩小范围。",
  created: "接入时间", answeredAt: "接听时间", completedAt: "完成时间", waitCol: "等待", outcome: "结果",
  clickBar: "点击柱形查看其中的联系。",
  meanWrapUp: "平均话后处理", slaAttainment: "服务承诺达成率", available: "就绪", away: "离开",
  occupancy: "占用率",
  occupancyHelp: "占用率：已完成联系的处理与话后处理时长，除以就绪时长。",
});

const FIGURES = [
  ["received", "repReceived"], ["answered", "repAnswered"], ["abandoned", "repAbandoned"], ["service_level", "serviceLevel"],
  ["sla_attainment", "slaAttainment"], ["mean_handling_secs", "meanHandling"], ["mean_wrap_up_secs", "meanWrapUp"],
  ["occupancy", "occupancy"],
];
/** Figures that are shares (drawn against 100%). */
const SHARES = new Set(["service_level", "sla_attainment", "occupancy"]);
const rep = { pane: null, form: null, chart: null, table: null, drill: null, data: null, defaults: null };

/** Today's date in `zone` (empty: UTC) as YYYY-MM-DD, or null for a zone this browser
 * does not know. */
function todayIn(zone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone: zone || "UTC", year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date());
  } catch {
    return null;
  }
}

/** The range shown until the admin picks one: the seven days up to today where today is
 * latest of UTC, this browser's zone and the zone asked for — so that after midnight in
 * a centre east of UTC (Shanghai's morning is UTC's evening) today's contacts are in it. */
function defaultRange(zone) {
  const ends = ["", Intl.DateTimeFormat().resolvedOptions().timeZone, zone].map(todayIn).filter(Boolean).sort();
  const to = ends[ends.length - 1];
  const from = new Date(Date.parse(`${to}T00:00:00Z`) - 6 * 86400000).toISOString().slice(0, 10);
  return { from, to };
}

/** Builds the tab in `pane`. */
function buildReports(pane) {
  rep.pane = pane;
  const was = rep.form ? Object.fromEntries(Object.entries(rep.form).map(([k, el]) => [k, el.value])) : null;
  const kept = rep.defaults;
  rep.defaults = defaultRange("");
  const from = h("input", { type: "date", id: "report-from", value: rep.defaults.from, "aria-label": t("rangeFrom") });
  const to = h("input", { type: "date", id: "report-to", value: rep.defaults.to, "aria-label": t("rangeTo") });
  const by = h("select", { id: "report-by", "aria-label": t("by") },
    ["hour", "day", "week"].map((b) => h("option", { value: b, selected: b === "day" }, t(`by_${b}`))));
  const slice = h("select", { id: "report-slice", "aria-label": t("slice") },
    ["tier", "channel", "topic", "team", "agent"].map((s) => h("option", { value: s }, t(`slice_${s}`))));
  const tz = h("input", { type: "text", id: "report-tz", list: "report-zones", placeholder: t("centreZone"),
    size: 16, maxlength: 64, "aria-label": t("timeZone") });
  const zones = h("datalist", { id: "report-zones" },
    ["UTC", "Asia/Shanghai", "Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles",
      Intl.DateTimeFormat().resolvedOptions().timeZone].map((z) => h("option", { value: z })));
  const figure = h("select", { id: "report-figure", "aria-label": t("figure"), onchange: () => drawReport() },
    FIGURES.map(([k, label]) => h("option", { value: k }, t(label))));
  rep.form = { from, to, by, slice, tz, figure };
  if (was) {
    for (const [k, v] of Object.entries(was)) rep.form[k].value = v;
    rep.defaults = kept || rep.defaults;
  }
  rep.status = h("p", { class: "muted", "aria-live": "polite" });
  rep.chart = h("div", { id: "report-chart" });
  rep.table = h("div", { id: "report-table", class: "scroll" });
  rep.drill = h("div", { id: "report-drill" });
  fill(pane,
    h("div", { class: "card" },
      h("h2", {}, t("reports")),
      h("div", { class: "row" },
        h("label", {}, t("rangeFrom"), " ", from), h("label", {}, t("rangeTo"), " ", to),
        h("label", {}, t("by"), " ", by), h("label", {}, t("slice"), " ", slice),
        h("label", {}, t("timeZone"), " ", tz, zones),
        h("button", { type: "button", class: "primary", id: "report-show", onclick: () => loadReports() }, t("show")),
        h("button", { type: "button", onclick: () => download("/api/reports.csv", true, "report.csv") }, t("downloadReport")),
        h("button", { type: "button", onclick: () => download("/api/reports/interactions.csv", false, "interactions.csv") }, t("downloadContacts"))),
      rep.status,
      h("div", { class: "row" }, h("label", {}, t("figure"), " ", figure), h("span", { class: "muted" }, t("clickBar"))),
      rep.chart),
    h("div", { class: "card" }, rep.table),
    h("div", { class: "card" }, rep.drill));
}

/** The query the form describes; with `full`, by and slice too. */
function reportQuery(full) {
  const f = rep.form;
  const q = new URLSearchParams({ from: f.from.value, to: f.to.value });
  if (f.tz.value.trim()) q.set("tz", f.tz.value.trim());
  if (full) { q.set("by", f.by.value); q.set("slice", f.slice.value); }
  return q.toString();
}

/** Reads the report the form asks for and draws it. */
async function loadReports() {
  // A range the admin has not changed follows the zone asked for (and the date).
  const f = rep.form;
  if (f.from.value === rep.defaults.from && f.to.value === rep.defaults.to) {
    rep.defaults = defaultRange(f.tz.value.trim());
    f.from.value = rep.defaults.from;
    f.to.value = rep.defaults.to;
  }
  try {
    rep.data = await api("GET", `/api/reports?${reportQuery(true)}`);
    // Agents are named by their names; the list is the Agents tab's, read once if needed.
    if (rep.data.slice === "agent" && !(con.agents && con.agents.length)) {
      con.agents = (await api("GET", "/api/agents")).agents || [];
    }
    fill(rep.drill);
    drawReport();
  } catch (e) {
    rep.data = null;
    fill(rep.status, h("span", { class: "error", role: "alert" }, e.message));
    fill(rep.chart);
    fill(rep.table);
  }
}

/** A CSV download, with the session's token. */
async function download(path, full, name) {
  try {
    const r = await fetch(`${path}?${reportQuery(full)}`, { headers: { Authorization: `Bearer ${session.token}` } });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new ApiFailure(r.status, body);
    }
    const url = URL.createObjectURL(await r.blob());
    const a = h("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    fill(rep.status, h("span", { class: "error", role: "alert" }, e.message));
  }
}

const pct = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 1000) / 10}%`);
const secs = (v) => (v === null || v === undefined ? "—" : span(v));
const sliceLabel = (slice, v) => (v === "" ? t("none") : slice === "tier" ? (STRINGS[lang][`tier_${v}`] || v)
  : slice === "agent" ? ((con.agents || []).find((a) => a.id === v) || { name: v }).name : v);

/** The chart of the chosen figure and the table of every figure. */
function drawReport() {
  const d = rep.data;
  if (!d) return;
  const people = d.slice === "agent" || d.slice === "team";
  fill(rep.status, t("reportZone", { tz: d.time_zone }), d.up_to_date ? "" : ` ${t("notUpToDate")}`,
    people ? ` ${t("occupancyHelp")}` : "");
  if (!d.rows.length) {
    fill(rep.chart, h("p", { class: "muted" }, t("noData")));
    fill(rep.table);
    return;
  }
  const figure = rep.form.figure.value;
  const buckets = [...new Set(d.rows.map((r) => r.bucket))];
  const values = [...new Set(d.rows.map((r) => r[d.slice]))].sort();
  const W = 720, H = 220, L = 40, B = 22;
  const share = SHARES.has(figure);
  const max = Math.max(1, ...d.rows.map((r) => r[figure] || 0));
  const groupW = (W - L - 4) / buckets.length;
  const barW = Math.max(1, (groupW - 2) / values.length);
  const y = (v) => 4 + (1 - v / max) * (H - B - 8);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t(FIGURES.find(([k]) => k === figure)[1]));
  const add = (tag, attrs, text) => {
    const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text) el.textContent = text;
    svg.append(el);
    return el;
  };
  for (const f of [0, 0.5, 1]) {
    add("line", { x1: L, x2: W, y1: y(f * max), y2: y(f * max), stroke: "#d9dde5" });
    add("text", { x: 2, y: y(f * max) + 4 }, share ? `${Math.round(f * max * 100)}%` : String(Math.round(f * max)));
  }
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  buckets.forEach((b, i) => {
    if (i % every === 0) add("text", { x: L + i * groupW, y: H - 4 }, d.by === "hour" ? b.slice(5, 13).replace("T", " ") : b.slice(5, 10));
  });
  for (const r of d.rows) {
    const v = r[figure];
    if (v === null || v === undefined) continue;
    const i = buckets.indexOf(r.bucket), k = values.indexOf(r[d.slice]);
    const bar = add("rect", {
      x: L + i * groupW + 1 + k * barW, y: y(v), width: Math.max(1, barW - 1), height: Math.max(0, y(0) - y(v)),
      fill: TIER_COLOURS[k % TIER_COLOURS.length], class: "bar", tabindex: 0,
      "data-bucket": r.bucket, "data-value": r[d.slice],
    });
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${r.bucket} · ${sliceLabel(d.slice, r[d.slice])}: ${share ? pct(v) : figure.endsWith("_secs") ? secs(v) : v}`;
    bar.append(title);
    bar.style.cursor = "pointer";
    const open = () => drill(r.bucket, r.bucket_end, r[d.slice]);
    bar.addEventListener("click", open);
    bar.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
  }
  const legend = values.map((v, k) => h("span", {},
    h("span", { class: "swatch", style: `background:${TIER_COLOURS[k % TIER_COLOURS.length]}` }), sliceLabel(d.slice, v)));
  fill(rep.chart, svg, h("div", { class: "legend" }, legend));
  fill(rep.table, h("table", { id: "report-rows" },
    h("thead", {}, h("tr", {}, [t("bucket"), t(`slice_${d.slice}`), t("repReceived"), t("repAnswered"), t("repAbandoned"),
      t("meanAbandonedWait"), t("serviceLevel"), t("asa"), t("meanHandling"), t("meanWrapUp"), t("transfers"), t("callbacks"),
      t("slaAttainment"), t("csat"), ...(people ? [t("available"), t("away"), t("occupancy")] : [])]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, d.rows.map((r) => h("tr", {},
      h("td", {}, d.by === "hour" ? r.bucket.slice(0, 16).replace("T", " ") : r.bucket.slice(0, 10)),
      h("td", {}, sliceLabel(d.slice, r[d.slice])),
      h("td", {}, r.received), h("td", {}, r.answered), h("td", {}, r.abandoned),
      h("td", {}, secs(r.mean_abandoned_wait_secs)), h("td", {}, pct(r.service_level)),
      h("td", {}, secs(r.average_speed_of_answer_secs)), h("td", {}, secs(r.mean_handling_secs)),
      h("td", {}, secs(r.mean_wrap_up_secs)), h("td", {}, r.transfers), h("td", {}, r.callbacks),
      h("td", {}, r.sla_attainment === null ? "—" : `${pct(r.sla_attainment)} (${r.sla_contacts})`),
      h("td", {}, r.csat_average === null ? "—" : `${r.csat_average.toFixed(2)} (${r.csat_count})`),
      ...(people ? [h("td", {}, secs(r.available_secs)), h("td", {}, secs(r.away_secs)), h("td", {}, pct(r.occupancy))] : []))))));
}

/** Lists the contacts behind one bar: those that arrived in its bucket (to its end: a
 * day the clocks change is not 24 hours) with its value. */
async function drill(bucket, end, value) {
  const d = rep.data;
  const to = new Date(Math.min(Date.parse(end), Date.parse(d.to))).toISOString();
  const from = new Date(Math.max(Date.parse(bucket), Date.parse(d.from))).toISOString();
  const q = new URLSearchParams({ from, to, slice: d.slice, value, limit: "200" });
  try {
    const r = await api("GET", `/api/reports/interactions?${q}`);
    fill(rep.drill,
      h("h2", {}, t("contactsBehind", { what: `${bucket.slice(0, 16).replace("T", " ")} · ${sliceLabel(d.slice, value)}` })),
      r.interactions.length ? h("table", { id: "report-contacts" },
        h("thead", {}, h("tr", {}, ["ID", t("slice_channel"), t("slice_tier"), t("slice_topic"), t("slice_agent"),
          t("created"), t("answeredAt"), t("completedAt"), t("waitCol"), t("outcome")].map((c) => h("th", {}, c)))),
        h("tbody", {}, r.interactions.map((i) => h("tr", {},
          h("td", { class: "mono", title: i.id }, i.id.slice(-8)), h("td", {}, i.channel), h("td", {}, tierPill(i.tier)),
          h("td", {}, i.topic || "—"), h("td", {}, i.agent || "—"), h("td", {}, clock(i.created)),
          h("td", {}, clock(i.answered)), h("td", {}, clock(i.completed)),
          h("td", {}, i.wait_secs === null ? "—" : span(Number(i.wait_secs))), h("td", {}, i.outcome)))))
        : h("p", { class: "muted" }, t("noData")),
      r.more ? h("p", { class: "muted" }, t("moreContacts")) : null);
    rep.drill.scrollIntoView({ block: "nearest" });
  } catch (e) {
    fill(rep.drill, h("p", { class: "error", role: "alert" }, e.message));
  }
}
