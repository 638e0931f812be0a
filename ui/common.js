// What the desktop and the console share: the two languages, the API with a bearer
// token, building elements (always as text, never as HTML), times and a login form.
"use strict";

const STRINGS = {
  en: {
    language: "Language", logIn: "Log in", logOut: "Log out", token: "Your token",
    tokenHelp: "The login token your administrator gave you.", badToken: "That token is not valid.",
    connecting: "Connecting…", connected: "Connected", reconnecting: "Connection lost; reconnecting…",
    loggedElsewhere: "You logged in from another window; this one has stopped.",
    removed: "Your token was reset or your account removed; log in again.",
    available: "Available", away: "Away", reason: "Reason", setPresence: "Set",
    capacity: "In use", phone: "Calls", chat: "Chats", email: "Emails", api: "Requests",
    offer: "New contact", accept: "Accept (A)", decline: "Decline (D)", expiresIn: "seconds left",
    noWork: "No contacts assigned. Set yourself available to receive offers.",
    wrapUp: "Wrap-up", wrapUpLeft: "Wrap-up: {s} s left before new work",
    customer: "Customer", tier: "Tier", why: "Why", value: "Value", lifetime: "Lifetime value",
    purchases: "Purchases", lastPurchase: "Last purchase", owner: "Account manager", you: "you",
    openMatters: "Open matters", noOpen: "None", deadline: "deadline", overdue: "overdue",
    left: "left", history: "History", identities: "Identities", unknown: "unknown", visitor: "Web visitor",
    complete: "Complete", disposition: "Disposition", notes: "Notes",
    resolved: "Resolved", followUp: "Follow-up needed", escalated: "Escalated", noAnswer: "No answer",
    send: "Send", reply: "Reply", typing: "The visitor is typing…", waited: "Waited {s} s in the queue",
    claimedOther: "Says their email is {e}: not verified, and it is another customer's address. Verify before discussing that account.",
    claimedSame: "Says their email is {e}: not verified, though it is this customer's address.",
    claimedNew: "Says their email is {e}: not verified.",
    queued: "queued", sent: "sent", failed: "failed", retrying: "retrying",
    attachments: "Attachments", showHtml: "Show formatted", showText: "Show text",
    callState: "Call", ringing: "Ringing", connectedCall: "Connected", ended: "Ended",
    caller: "Caller", customerEnded: "The customer ended the contact ({r}).", movedAway: "A supervisor moved this contact to another agent.",
    closedByAdmin: "An administrator closed this contact (its customer's data was erased).",
    subject: "Subject", topic: "Topic", channel: "Channel", from: "From", to: "To", received: "received",
    console: "Console", desktop: "Agent desktop", live: "Live queue", rules: "Routing rules",
    agents: "Agents", customers: "Customers", audit: "Audit",
    agentsNotLoaded: "The agents could not be loaded ({e}). What is shown may be out of date.", tryAgain: "Try again",
    overloaded: "Overloaded: refusing some new contacts.", recoveredLoad: "Load back under capacity.",
    pressure: "Pressure", routerLag: "router lag", refusedLastMinute: "refused in the last minute",
    nodes: "Nodes", node: "Node", leader: "Leader", follower: "Follower", lastSeen: "Last seen", thisNode: "this one",
    waiting: "Waiting", oldest: "Oldest", longestWaiting: "Longest waiting", age: "Waiting for", byTier: "By tier", byChannel: "By channel",
    byTopic: "By topic", none: "(none)", agentStates: "Agents", presence: "Presence", holding: "Holding",
    offered: "On offer", serviceLevel: "Service level", last15: "last 15 min", today: "Service level per hour, last 24 h",
    answered: "answered", withinTarget: "within target", target: "target", move: "Move", moveTo: "Move to agent",
    setAway: "Set away", validate: "Validate", apply: "Apply", simulate: "Simulate", diff: "Changes against the active version",
    noChanges: "No changes.", valid: "The rules are valid.", errors: "Errors", warnings: "Warnings", versions: "Versions",
    version: "Version", rollback: "Roll back", comment: "Comment", applied: "Applied as version {v}.",
    simWindow: "Replay the last", hours: "hours", recorded: "Recorded", active: "Active rules", candidate: "This draft",
    fifo: "First come, first served", idleWhileWaiting: "Agents idle while contacts waited (held by rings)",
    agentMinutes: "agent-min", idleNow: "idle now",
    meanWait: "Mean wait", p95Wait: "p95 wait", longest: "Longest wait", abandonment: "Abandoned", contacts: "Contacts",
    create: "Create", save: "Save", name: "Name", level: "Level", skills: "Skills", role: "Role",
    extension: "Extension", resetToken: "Reset token", remove: "Remove", newToken: "The new token (shown only once): {t}",
    edit: "Edit", cancel: "Cancel", search: "Search", kind: "Kind", lookup: "Find the customer",
    anything: "name or any identity", noneFound: "No customer found.", pick: "Several customers match: pick one.",
    explicitTier: "Explicit tier", automatic: "(automatic)", import: "Import CSV", importDone: "Imported {n} rows: {c} created, {u} updated.",
    row: "Row", line: "Line {n}", field: "Field", problem: "Problem", uploading: "Uploading…", actor: "Actor", action: "Action",
    auditTarget: "Target", since: "Since", until: "Until", filter: "Filter", more: "More", when: "When", change: "Change",
    loading: "Loading…", saved: "Saved.", confirmRemove: "Remove this agent? Its record stays, it can no longer log in.",
    keyboard: "Keys: A accept, D decline, Alt+1…9 go to a workspace.", interaction: "Interaction",
    endedBy: "ended", supervisorOnly: "The console is for supervisors and admins.", noneWaiting: "Nobody is waiting.",
    logged: "logged in", offline: "offline", wrapping: "wrap-up",
    confirmRollback: "Make version {v} the active rules again (as a new version)?", newCustomer: "New customer",
    keptAside: "Mail kept aside", text: "Text", makeContact: "Make a contact", contactMade: "Contact made",
    customerEmail: "Customer's email", noneKept: "No mail is kept aside.",
    keptAsideHelp: "Mail that became no contact and answers no conversation. Make a contact of a customer's mail found here: it is queued and routed like any new mail.",
    aside_auto_reply: "Auto-reply", aside_bounce: "Bounce", aside_loop: "Our own mail", aside_no_sender: "No sender",
    aside_bad_sender: "Sender is not an address", aside_unreadable: "Unreadable",
    complaint: "Complaint", due: "due", calendar: "Calendar",
    target_first_response: "First response", target_next_response: "Next response", target_resolution: "Resolution",
    warnedNotice: "{t} is due soon.", breachedNotice: "{t} is overdue: the supervisors have been told.",
    breachedSupervisor: "{t} is overdue.", dueIn: "due in {s}", heldForOpening: "Contacts that waited for an opening",
    callbackRetry: "Callback: {r}. Another attempt is booked.", callbackDone: "Callback: {r}.",
    callback_answered: "answered", callback_no_answer: "no answer", callback_busy: "busy", callback_failed: "failed",
    callbackTask: "Call back: the phone system calls the customer and connects you.",
    retention: "Retention", kept: "Content kept", keptForever: "forever", keptDays: "{d} days",
    removedBefore: "Removed from before", lastRun: "Last run", lastRemoved: "Removed by that run",
    waitingForEnd: "Contacts waiting to end",
    retentionHelp: "Message bodies, subjects, files, chat texts, notes and recordings' links older than a channel's period are removed by the server; each contact's channel, tier, times and agents stay for reports. Set in the configuration file ([retention]).",
  },
  zh: {
    language: "语言", logIn: "登录", logOut: "退出", token: "登录令牌",
    tokenHelp: "管理员给您的登录令牌。", badToken: "令牌无效。",
    connecting: "正在连接…", connected: "已连接", reconnecting: "连接中断，正在重新连接…",
    loggedElsewhere: "您已在另一个窗口登录，此窗口已停止。",
    removed: "您的令牌已重置或账号已删除，请重新登录。",
    available: "空闲", away: "离开", reason: "原因", setPresence: "设置",
    capacity: "占用", phone: "电话", chat: "在线聊天", email: "邮件", api: "请求",
    offer: "新的联系", accept: "接受 (A)", decline: "拒绝 (D)", expiresIn: "秒后过期",
    noWork: "暂无分配的联系。将状态设为空闲即可接收分配。",
    wrapUp: "话后整理", wrapUpLeft: "话后整理：还剩 {s} 秒",
    customer: "客户", tier: "等级", why: "原因", value: "价值", lifetime: "生命周期价值",
    purchases: "购买次数", lastPurchase: "最近购买", owner: "客户经理", you: "您",
    openMatters: "未结事项", noOpen: "无", deadline: "截止", overdue: "已超期",
    left: "剩余", history: "历史记录", identities: "身份", unknown: "未知", visitor: "网站访客",
    complete: "完成", disposition: "处理结果", notes: "备注",
    resolved: "已解决", followUp: "需要跟进", escalated: "已升级", noAnswer: "无人应答",
    send: "发送", reply: "回复", typing: "访客正在输入…", waited: "排队等待了 {s} 秒",
    claimedOther: "自称邮箱为 {e}:未经验证,且属于另一位客户。谈及该账户前请先核实身份。",
    claimedSame: "自称邮箱为 {e}:未经验证,但与该客户的邮箱一致。",
    claimedNew: "自称邮箱为 {e}:未经验证。",
    queued: "已排队", sent: "已发送", failed: "发送失败", retrying: "正在重试",
    attachments: "附件", showHtml: "显示格式", showText: "显示纯文本",
    callState: "通话", ringing: "振铃中", connectedCall: "通话中", ended: "已结束",
    caller: "来电号码", customerEnded: "客户已结束此联系（{r}）。", movedAway: "主管已将此联系转给其他坐席。",
    closedByAdmin: "管理员已关闭此联系（该客户的数据已被删除）。",
    subject: "主题", topic: "话题", channel: "渠道", from: "发件人", to: "收件人", received: "收到",
    console: "管理控制台", desktop: "坐席工作台", live: "实时队列", rules: "路由规则",
    agents: "坐席", customers: "客户", audit: "审计",
    agentsNotLoaded: "无法加载坐席列表（{e}）。下面显示的可能不是最新的。", tryAgain: "重试",
    overloaded: "系统过载：正在拒绝部分新接入。", recoveredLoad: "负载已回到容量以内。",
    pressure: "压力", routerLag: "路由延迟", refusedLastMinute: "最近一分钟拒绝",
    nodes: "节点", node: "节点", leader: "主节点", follower: "从节点", lastSeen: "最近心跳", thisNode: "本节点",
    waiting: "等待中", oldest: "最长等待", longestWaiting: "等待最久的联系", age: "已等待", byTier: "按等级", byChannel: "按渠道",
    byTopic: "按话题", none: "（无）", agentStates: "坐席状态", presence: "状态", holding: "处理中",
    offered: "分配中", serviceLevel: "服务水平", last15: "最近 15 分钟", today: "每小时服务水平（最近 24 小时）",
    answered: "已接听", withinTarget: "达标", target: "目标", move: "转移", moveTo: "转给坐席",
    setAway: "设为离开", validate: "校验", apply: "应用", simulate: "模拟", diff: "与当前版本的差异",
    noChanges: "没有改动。", valid: "规则有效。", errors: "错误", warnings: "警告", versions: "版本",
    version: "版本", rollback: "回滚", comment: "说明", applied: "已应用为第 {v} 版。",
    simWindow: "回放最近", hours: "小时", recorded: "实际记录", active: "当前规则", candidate: "本草稿",
    fifo: "先到先服务", idleWhileWaiting: "有联系等待时空闲的坐席（被分组规则挡住）",
    agentMinutes: "坐席·分钟", idleNow: "当前空闲",
    meanWait: "平均等待", p95Wait: "p95 等待", longest: "最长等待", abandonment: "放弃", contacts: "联系数",
    create: "创建", save: "保存", name: "姓名", level: "级别", skills: "技能", role: "角色",
    extension: "分机", resetToken: "重置令牌", remove: "删除", newToken: "新令牌（只显示一次）：{t}",
    edit: "编辑", cancel: "取消", search: "搜索", kind: "类型", lookup: "查找客户",
    anything: "姓名或任意标识", noneFound: "未找到客户。", pick: "有多位客户符合,请选择一位。",
    explicitTier: "指定等级", automatic: "（自动）", import: "导入 CSV", importDone: "已导入 {n} 行：新建 {c}，更新 {u}。",
    row: "行", line: "第 {n} 行", field: "字段", problem: "问题", uploading: "正在上传…", actor: "操作人", action: "操作",
    auditTarget: "对象", since: "起始", until: "截止", filter: "筛选", more: "更多", when: "时间", change: "变更",
    loading: "正在加载…", saved: "已保存。", confirmRemove: "删除此坐席？记录会保留，但无法再登录。",
    keyboard: "快捷键：A 接受，D 拒绝，Alt+1…9 切换工作区。", interaction: "联系",
    endedBy: "已结束", supervisorOnly: "控制台仅供主管和管理员使用。", noneWaiting: "没有人在等待。",
    logged: "已登录", offline: "离线", wrapping: "话后整理",
    confirmRollback: "将第 {v} 版重新设为当前规则（作为新版本）？", newCustomer: "新建客户",
    keptAside: "搁置的邮件", text: "正文", makeContact: "转为联系", contactMade: "已转为联系",
    customerEmail: "客户邮箱", noneKept: "没有搁置的邮件。",
    keptAsideHelp: "未成为联系、也不属于任何会话的邮件。若其中有客户的邮件，可将其转为联系：它会像新邮件一样排队并分配。",
    aside_auto_reply: "自动回复", aside_bounce: "退信", aside_loop: "本系统发出的邮件", aside_no_sender: "无发件人",
    aside_bad_sender: "发件人不是有效地址", aside_unreadable: "无法读取",
    complaint: "投诉", due: "期限", calendar: "日历",
    target_first_response: "首次响应", target_next_response: "后续响应", target_resolution: "解决",
    warnedNotice: "{t}即将到期。", breachedNotice: "{t}已超时：已通知主管。",
    breachedSupervisor: "{t}已超时。", dueIn: "{s}后到期", heldForOpening: "等待营业的联系",
    callbackRetry: "回拨：{r}。已安排再次拨打。", callbackDone: "回拨：{r}。",
    callback_answered: "已接通", callback_no_answer: "无人接听", callback_busy: "占线", callback_failed: "失败",
    callbackTask: "回拨：电话系统会呼叫客户并为您接通。",
    tier_high: "高", tier_medium: "中", tier_low: "低",
    ev_interaction_received: "收到联系", ev_tier_decided: "确定等级", ev_tier_changed: "等级变更", ev_queued: "排队", ev_offered: "已分配", ev_offer_declined: "拒绝分配", ev_offer_timed_out: "分配超时", ev_offer_withdrawn: "撤回分配", ev_assigned: "已接手", ev_completed: "已完成", ev_abandoned: "已放弃", ev_ended_by_customer: "客户结束", ev_moved: "已转移", ev_transferred: "已转交", ev_note: "备注", ev_email_received: "收到邮件", ev_email_sent: "已发送邮件", ev_email_acknowledged: "已发送确认邮件", ev_email_survey_sent: "已发送满意度调查", ev_call_ringing: "来电振铃", ev_call_answered: "来电接通", ev_call_ended: "通话结束", ev_call_transferred: "通话转接", ev_voicemail: "语音留言", ev_customer_created: "新建客户", ev_identity_added: "添加身份", ev_identity_removed: "移除身份", ev_customer_updated: "客户信息更新", ev_purchase_recorded: "记录购买", ev_customers_merged: "客户合并", ev_sla_warning: "服务目标预警", ev_sla_breached: "服务目标超时", ev_complaint_opened: "投诉已登记", ev_complaint_owner: "投诉负责人", ev_complaint_resolved: "投诉已解决", ev_held_until_open: "等待营业", ev_callback_requested: "请求回拨", ev_callback_booked: "已安排回拨", ev_callback_result: "回拨结果", ev_satisfaction: "满意度评分", ev_reopened: "重新打开", ev_opened: "访客已打开对话", ev_left_unwritten: "访客未留言即离开",
    retention: "数据保留", kept: "内容保留", keptForever: "永久", keptDays: "{d} 天",
    removedBefore: "已删除此前内容", lastRun: "上次运行", lastRemoved: "当次删除",
    waitingForEnd: "待结束的联系",
    retentionHelp: "超过各渠道保留期限的邮件正文、主题、附件、聊天内容、备注和录音链接由服务器删除；每个联系的渠道、等级、时间和坐席会保留，用于报表。在配置文件中设置（[retention]）。",
  },
};

let lang = localStorage.getItem("sb.lang") ||
  ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");

/** The text for `key` in the chosen language, with `{name}` filled from `vars`. */
function t(key, vars) {
  const s = (STRINGS[lang] && STRINGS[lang][key]) || STRINGS.en[key] || key;
  return vars ? s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? "")) : s;
}

/** Fills every `data-i18n` element of the page, and sets the document's language. */
function translatePage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of document.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
}

/** The language switcher in the header; `onChange` redraws what the page drew itself. */
function languageSwitcher(select, onChange) {
  select.value = lang;
  select.addEventListener("change", () => {
    lang = select.value;
    localStorage.setItem("sb.lang", lang);
    translatePage();
    onChange();
  });
  translatePage();
}

/**
 * Builds an element. Children are nodes or strings; strings become text, so nothing
 * a customer wrote is ever read as HTML. Attributes starting with `on` are listeners.
 */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces an element's children. */
function fill(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (sel, root) => (root || document).querySelector(sel);

/** An API error: the server's message, and its `errors` list when it gave one. */
class ApiFailure extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

/** The bearer token this tab logged in with. */
const session = {
  get token() { return sessionStorage.getItem("sb.token"); },
  set token(v) { if (v) sessionStorage.setItem("sb.token", v); else sessionStorage.removeItem("sb.token"); },
};

/** Calls the API: JSON in and out unless told otherwise; throws an `ApiFailure`. */
async function api(method, path, body, opts) {
  const headers = { Authorization: `Bearer ${session.token}` };
  let payload;
  if (body !== undefined) {
    if (opts && opts.type) { headers["Content-Type"] = opts.type; payload = body; }
    else { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  }
  const r = await fetch(path, { method, headers, body: payload });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { message: text }; }
  if (!r.ok) throw new ApiFailure(r.status, data);
  return data;
}

/** The websocket address of a path on this server. */
function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

/** A time as the reader's clock shows it. */
function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString(lang === "zh" ? "zh-CN" : undefined)
    : d.toLocaleString(lang === "zh" ? "zh-CN" : undefined);
}

/** A span of seconds as "1 h 4 min", "3 min 2 s" or "12 s". */
function span(secs) {
  secs = Math.max(0, Math.round(secs));
  if (secs >= 3600) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  if (secs >= 60) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${secs} s`;
}

/** A tier as a coloured label, its name in the reader's language when it is a known one. */
function tierPill(tier) {
  const known = STRINGS[lang] && STRINGS[lang][`tier_${tier}`];
  return h("span", { class: `pill tier-${tier}`, title: tier }, known || tier || "?");
}

/** A history event's kind as a reader says it ("email received", "邮件已收到"). */
function eventName(kind) {
  return (STRINGS[lang] && STRINGS[lang][`ev_${kind}`]) || String(kind).replace(/_/g, " ");
}

/** A short message in the corner, gone after a few seconds. */
function toast(text) {
  const el = h("div", { class: "toast", role: "status" }, text);
  document.body.append(el);
  setTimeout(() => el.remove(), 6000);
}

/**
 * Shows the login form until a token is given, then calls `onToken(token)`; that
 * resolves to true when the token is good, or a message to show.
 */
function showLogin(container, onToken, note) {
  const input = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true, "aria-describedby": "token-help" });
  const problem = h("p", { class: "error", role: "alert" }, note || "");
  const form = h("form", { class: "card login" },
    h("h2", {}, t("logIn")),
    h("label", { for: "token" }, t("token"), input),
    h("p", { id: "token-help", class: "muted small" }, t("tokenHelp")),
    problem,
    h("button", { class: "primary", type: "submit" }, t("logIn")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const answer = await onToken(input.value.trim());
    if (answer !== true) fill(problem, answer || t("badToken"));
  });
  fill(container, form);
  input.focus();
}
