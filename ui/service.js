// The console's "Hours & service" tab: calendars (open now, their week, holidays) with
// an editor, which calendar serves which contacts, the service targets, open complaints
// with their owners and deadlines, and the targets breached of late. Every change goes
// through the public API, which checks it whole and keeps it as a new version of the
// routing rules (audited); a refused change shows each fault the server named.
"use strict";

Object.assign(STRINGS.en, {
  service: "Hours & service", calendars: "Calendars", openNow: "Open now", closedNow: "Closed",
  timeZone: "Time zone", alwaysOpen: "Open around the clock", holidays: "Holidays", week: "Week",
  nextChange: "Changes at", newCalendar: "New calendar", periodsHelp: "Periods such as 08:00-12:00, 13:00-18:00; empty: closed.",
  holidaysHelp: "Dates such as 2026-12-24 (that day) or 12-25 (every year), separated by commas.",
  servedBy: "Which calendar serves which contacts", servedByHelp: "The first row whose tier and channel match (* for any) decides. Contacts no row covers are served around the clock.",
  addRow: "Add a row", up: "Up", down: "Down",
  targets: "Service targets", targetsHelp: "Open minutes until each answer is due, for the first row whose tier, topic and channel match (* for any). A warning comes the given minutes before.",
  firstResponse: "First response (min)", nextResponse: "Next response (min)", resolution: "Resolution (min)", warnBefore: "Warn before (min)",
  complaints: "Open complaints", noComplaints: "No open complaints.", due: "Due", state: "State", resolve: "Resolve",
  breaches: "Targets missed or warned of, last 24 h", noBreaches: "No target missed or warned of.",
  waitingOpening: "Contacts waiting for an opening: {n}", removeCalendar: "Remove this calendar? Rules that name it must be changed first.",
  day_monday: "Monday", day_tuesday: "Tuesday", day_wednesday: "Wednesday", day_thursday: "Thursday",
  day_friday: "Friday", day_saturday: "Saturday", day_sunday: "Sunday",
  state_open: "open", state_warned: "warned", state_breached: "breached", state_met: "met", state_pending: "pending", state_paused: "paused",
});
Object.assign(STRINGS.zh, {
  service: "营业时间与服务", calendars: "日历", openNow: "营业中", closedNow: "休息中",
  timeZone: "时区", alwaysOpen: "全天候营业", holidays: "节假日", week: "每周",
  nextChange: "下次变更", newCalendar: "新建日历", periodsHelp: "时段如 08:00-12:00, 13:00-18:00；留空表示休息。",
  holidaysHelp: "日期如 2026-12-24（当天）或 12-25（每年），用逗号分隔。",
  servedBy: "哪个日历服务哪些联系", servedByHelp: "按顺序取第一条等级和渠道都匹配的规则（* 表示任意）。没有规则覆盖的联系全天候服务。",
  addRow: "添加一行", up: "上移", down: "下移",
  targets: "服务目标", targetsHelp: "营业时间内，各项答复的期限（分钟），取第一条等级、话题和渠道都匹配的规则（* 表示任意）。到期前若干分钟发出预警。",
  firstResponse: "首次响应（分钟）", nextResponse: "后续响应（分钟）", resolution: "解决（分钟）", warnBefore: "提前预警（分钟）",
  complaints: "未结投诉", noComplaints: "没有未结投诉。", due: "期限", state: "状态", resolve: "解决",
  breaches: "最近 24 小时超时或预警的目标", noBreaches: "没有超时或预警的目标。",
  waitingOpening: "等待营业的联系：{n}", removeCalendar: "删除此日历？引用它的规则需先修改。",
  day_monday: "星期一", day_tuesday: "星期二", day_wednesday: "星期三", day_thursday: "星期四",
  day_friday: "星期五", day_saturday: "星期六", day_sunday: "星期日",
  state_open: "未结", state_warned: "已预警", state_breached: "已超时", state_met: "已达成", state_pending: "进行中", state_paused: "已暂停",
});

const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const svc = { pane: null, data: null };

/** Builds the tab in `pane`; its content comes with `loadService`. */
function buildService(pane) {
  svc.pane = pane;
  fill(pane, h("p", { class: "muted" }, t("loading")));
}

/** Loads what is in force and draws it. */
async function loadService() {
  try {
    const since = new Date(Date.now() - 86400000).toISOString();
    const [data, complaints, breaches] = await Promise.all([
      api("GET", "/api/service"),
      api("GET", "/api/complaints"),
      api("GET", `/api/service/breaches?since=${encodeURIComponent(since)}`),
    ]);
    svc.data = data;
    fill(svc.pane,
      calendarsCard(data),
      hoursCard(data),
      policiesCard(data),
      complaintsCard(complaints.complaints),
      breachesCard(breaches.targets));
  } catch (e) {
    fill(svc.pane, h("p", { class: "error", role: "alert" }, e.message));
  }
}

/** A refused change: the server's message and every fault it named. */
function faults(el, e) {
  const list = (e.body && e.body.errors) || [];
  fill(el, h("p", { class: "error", role: "alert" }, e.message),
    list.length ? h("ul", { class: "error small" }, list.map((m) => h("li", {}, m))) : null);
}

const split = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

function calendarsCard(data) {
  const rows = Object.entries(data.calendars).map(([name, c]) => h("tr", { dataset: { calendar: name } },
    h("th", { scope: "row" }, name),
    h("td", {}, c.time_zone),
    h("td", {}, c.status && c.status.open_now
      ? h("span", { class: "okay" }, t("openNow")) : h("span", { class: "warning" }, t("closedNow")),
      c.status && c.status.next_change ? h("div", { class: "muted small" }, `${t("nextChange")} ${clock(c.status.next_change)}`) : null),
    h("td", { class: "small" }, c.always_open ? t("alwaysOpen")
      : DAYS.filter((d) => (c[d] || []).length).map((d) => h("div", {}, `${t(`day_${d}`)} ${c[d].join(", ")}`))),
    h("td", { class: "small" }, (c.holidays || []).join(", ") || "—"),
    h("td", {}, h("button", { type: "button", onclick: () => editCalendar(name, c) }, t("edit")),
      h("button", { type: "button", onclick: () => removeCalendar(name) }, t("remove")))));
  const editor = h("div", { id: "calendar-editor" });
  svc.editor = editor;
  return h("div", { class: "card" },
    h("h2", {}, t("calendars")),
    h("p", { class: "muted small" }, t("waitingOpening", { n: data.waiting_for_opening })),
    h("div", { class: "scroll" }, h("table", { id: "calendars" },
      h("thead", {}, h("tr", {}, h("th", {}, t("name")), h("th", {}, t("timeZone")), h("th", {}, t("state")),
        h("th", {}, t("week")), h("th", {}, t("holidays")), h("th", {}))),
      h("tbody", {}, rows))),
    h("button", { type: "button", class: "primary", onclick: () => editCalendar("", { time_zone: "UTC" }) }, t("newCalendar")),
    editor);
}

/** The calendar editor, for `name` (a new one when empty). */
function editCalendar(name, c) {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const field = (label, input, help) => h("label", {}, label, input, help ? h("span", { class: "muted small" }, help) : null);
  const nameInput = h("input", { name: "calendar-name", value: name, required: true, readonly: name ? true : null });
  const zone = h("input", { name: "time_zone", value: c.time_zone || "UTC", list: "time-zones", required: true });
  const always = h("input", { type: "checkbox", name: "always_open" });
  always.checked = !!c.always_open;
  const days = DAYS.map((d) => [d, h("input", { name: d, value: (c[d] || []).join(", ") })]);
  const holidays = h("input", { name: "holidays", value: (c.holidays || []).join(", ") });
  const comment = h("input", { name: "comment" });
  const problem = h("div", {});
  const form = h("form", { class: "card editor", "aria-label": t("calendar") },
    h("datalist", { id: "time-zones" }, zones.map((z) => h("option", { value: z }))),
    field(t("name"), nameInput), field(t("timeZone"), zone),
    h("label", { class: "row" }, always, t("alwaysOpen")),
    h("p", { class: "muted small" }, t("periodsHelp")),
    days.map(([d, input]) => field(t(`day_${d}`), input)),
    field(t("holidays"), holidays, t("holidaysHelp")),
    field(t("comment"), comment),
    problem,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("save")),
      h("button", { type: "button", onclick: () => svc.editor.replaceChildren() }, t("cancel"))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const calendar = { time_zone: zone.value.trim(), always_open: always.checked, holidays: split(holidays.value) };
    for (const [d, input] of days) calendar[d] = split(input.value);
    try {
      await api("PUT", `/api/service/calendars/${encodeURIComponent(nameInput.value.trim())}`,
        { calendar, comment: comment.value.trim() || null });
      toast(t("saved"));
      loadService();
    } catch (err) {
      faults(problem, err);
    }
  });
  fill(svc.editor, form);
  (name ? zone : nameInput).focus();
}

async function removeCalendar(name) {
  if (!confirm(t("removeCalendar"))) return;
  try {
    await api("DELETE", `/api/service/calendars/${encodeURIComponent(name)}`);
    loadService();
  } catch (e) {
    faults(svc.editor, e);
  }
}

/**
 * An editable list of rows (each a set of named fields), reordered, added and removed,
 * saved whole with `save(rows)`.
 */
function rowsEditor(id, columns, rows, save) {
  const body = h("tbody", {});
  const problem = h("div", {});
  const draw = () => {
    fill(body, rows.map((r, i) => h("tr", {},
      columns.map((c) => h("td", {}, c.input(r[c.key], (v) => { r[c.key] = v; }, `${id}-${i}-${c.key}`))),
      h("td", { class: "row" },
        h("button", { type: "button", disabled: i === 0 || null, onclick: () => { [rows[i - 1], rows[i]] = [rows[i], rows[i - 1]]; draw(); } }, t("up")),
        h("button", { type: "button", disabled: i === rows.length - 1 || null, onclick: () => { [rows[i + 1], rows[i]] = [rows[i], rows[i + 1]]; draw(); } }, t("down")),
        h("button", { type: "button", onclick: () => { rows.splice(i, 1); draw(); } }, t("remove"))))));
  };
  draw();
  return h("div", {},
    h("div", { class: "scroll" }, h("table", { id }, h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c.label)), h("th", {}))), body)),
    h("div", { class: "row" },
      h("button", { type: "button", onclick: () => { rows.push(Object.fromEntries(columns.map((c) => [c.key, c.blank]))); draw(); } }, t("addRow")),
      h("button", { type: "button", class: "primary", onclick: async () => {
        try { await save(rows); toast(t("saved")); loadService(); } catch (e) { faults(problem, e); }
      } }, t("save"))),
    problem);
}

const textCell = (value, set, name) => h("input", { name, value: value ?? "*", size: 10, oninput: (e) => set(e.target.value.trim()) });
const numberCell = (value, set, name) => h("input", {
  name, type: "number", min: 1, value: value ?? "", style: "width:7em",
  oninput: (e) => set(e.target.value === "" ? null : Number(e.target.value)),
});
const channelCell = (value, set, name) => {
  const s = h("select", { name, onchange: (e) => set(e.target.value) },
    ["*", "phone", "email", "chat", "api"].map((c) => h("option", { value: c }, c === "*" ? "*" : t(c))));
  s.value = value || "*";
  return s;
};

function hoursCard(data) {
  const rows = data.hours.map((r) => ({ ...r }));
  const calendarCell = (value, set, name) => {
    const s = h("select", { name, onchange: (e) => set(e.target.value) },
      Object.keys(data.calendars).map((c) => h("option", { value: c }, c)));
    s.value = value || Object.keys(data.calendars)[0] || "";
    if (!value) set(s.value);
    return s;
  };
  return h("div", { class: "card" },
    h("h2", {}, t("servedBy")),
    h("p", { class: "muted small" }, t("servedByHelp")),
    rowsEditor("hours", [
      { key: "tier", label: t("tier"), input: textCell, blank: "*" },
      { key: "channel", label: t("channel"), input: channelCell, blank: "*" },
      { key: "calendar", label: t("calendar"), input: calendarCell, blank: "" },
    ], rows, (r) => api("PUT", "/api/service/hours", { hours: r })));
}

function policiesCard(data) {
  const rows = data.policies.map((r) => ({ ...r }));
  const clean = (r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== null && v !== undefined && v !== ""));
  return h("div", { class: "card" },
    h("h2", {}, t("targets")),
    h("p", { class: "muted small" }, t("targetsHelp")),
    rowsEditor("policies", [
      { key: "tier", label: t("tier"), input: textCell, blank: "*" },
      { key: "topic", label: t("topic"), input: textCell, blank: "*" },
      { key: "channel", label: t("channel"), input: channelCell, blank: "*" },
      { key: "first_response_mins", label: t("firstResponse"), input: numberCell, blank: null },
      { key: "next_response_mins", label: t("nextResponse"), input: numberCell, blank: null },
      { key: "resolution_mins", label: t("resolution"), input: numberCell, blank: null },
      { key: "warn_before_mins", label: t("warnBefore"), input: numberCell, blank: 10 },
    ], rows, (r) => api("PUT", "/api/service/policies", { policies: r.map(clean) })));
}

function complaintsCard(list) {
  const agentName = (id) => (con.agents.find((a) => a.id === id) || {}).name || id || "—";
  const ownerSelect = (c) => {
    const s = h("select", { "aria-label": t("owner"), onchange: async (e) => {
      try { await api("POST", `/api/complaints/${c.id}/owner`, { agent_id: e.target.value }); toast(t("saved")); loadService(); } catch (err) { toast(err.message); }
    } }, h("option", { value: "" }, "—"), con.agents.map((a) => h("option", { value: a.id }, a.name)));
    s.value = c.owner_agent_id || "";
    return s;
  };
  return h("div", { class: "card" },
    h("h2", {}, t("complaints")),
    list.length === 0 ? h("p", { class: "muted" }, t("noComplaints")) : h("div", { class: "scroll" }, h("table", { id: "complaints" },
      h("thead", {}, h("tr", {}, h("th", {}, t("customer")), h("th", {}, t("topic")), h("th", {}, t("owner")),
        h("th", {}, t("due")), h("th", {}, t("state")), h("th", {}))),
      h("tbody", {}, list.map((c) => h("tr", { dataset: { complaint: c.id } },
        h("td", {}, h("a", { href: `#customers`, onclick: () => show("customers") }, c.customer_id.slice(0, 8))),
        h("td", {}, c.topic), h("td", {}, ownerSelect(c), h("span", { class: "muted small" }, ` ${agentName(c.owner_agent_id)}`)),
        h("td", { class: Date.parse(c.due_at) < Date.now() ? "error" : "" }, clock(c.due_at)),
        h("td", {}, t(`state_${c.state}`)),
        h("td", {}, h("button", { type: "button", onclick: async () => {
          try { await api("POST", `/api/complaints/${c.id}/resolve`); loadService(); } catch (e) { toast(e.message); }
        } }, t("resolve")))))))));
}

function breachesCard(list) {
  return h("div", { class: "card" },
    h("h2", {}, t("breaches")),
    list.length === 0 ? h("p", { class: "muted" }, t("noBreaches")) : h("div", { class: "scroll" }, h("table", { id: "breaches" },
      h("thead", {}, h("tr", {}, h("th", {}, t("interaction")), h("th", {}, t("channel")), h("th", {}, t("target")),
        h("th", {}, t("due")), h("th", {}, t("state")))),
      h("tbody", {}, list.map((d) => h("tr", {},
        h("td", {}, d.interaction_id.slice(0, 8)), h("td", {}, t(d.channel)),
        h("td", {}, t(`target_${d.target}`)), h("td", {}, clock(d.due_at)),
        h("td", { class: d.state === "breached" ? "error" : "warning" }, t(`state_${d.state}`))))))));
}
