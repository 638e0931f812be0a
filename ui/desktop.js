// The agent desktop: one websocket to the router (docs/agent-protocol.md) for offers,
// assignments and live events, and the public API for interactions and customers.
// It reconnects by itself and resumes the session, so nothing sent while the link was
// down is missed: every numbered event is applied once, in order.
"use strict";

const desk = {
  ws: null,
  agent: null,
  capacity: null,
  presence: "away",
  offer: null,
  workspaces: new Map(), // interaction id → workspace
  wrapUntil: 0,
  retry: 0,
  stopped: false,
  heartbeat: null,
};

const seqStore = {
  get session() { return sessionStorage.getItem("sb.session"); },
  get last() { return Number(sessionStorage.getItem("sb.seq") || 0); },
  save(session, seq) {
    sessionStorage.setItem("sb.session", session);
    sessionStorage.setItem("sb.seq", String(seq));
  },
  clear() { sessionStorage.removeItem("sb.session"); sessionStorage.removeItem("sb.seq"); },
};

const main = $("#main");
let view = null; // the logged-in layout's parts

function start() {
  languageSwitcher($("#lang"), redraw);
  $("#logout").addEventListener("click", logOut);
  if (session.token) connect();
  else showLogin(main, tryToken);
  document.addEventListener("keydown", keys);
  setInterval(tick, 1000);
}

async function tryToken(token) {
  session.token = token;
  seqStore.clear();
  // Asking for notifications needs the click that logs in.
  if ("Notification" in window && Notification.permission === "default") {
    Notification.requestPermission().catch(() => {});
  }
  connect();
  return true;
}

function logOut() {
  desk.stopped = true;
  if (desk.ws) desk.ws.close(1000, "logged out");
  session.token = null;
  seqStore.clear();
  desk.workspaces.clear();
  desk.offer = null;
  $("#logout").classList.add("hidden");
  fill($("#me"));
  fill($("#link"));
  view = null;
  showLogin(main, tryToken);
}

// ---- the link ----

function connect() {
  desk.stopped = false;
  fill($("#link"), t("connecting"));
  const ws = new WebSocket(wsUrl("/agent/ws"));
  desk.ws = ws;
  ws.onopen = () => {
    const login = { type: "login", token: session.token };
    if (seqStore.session) {
      login.resume = { session: seqStore.session, last_seq: seqStore.last };
      // A server that no longer knows the session starts the new one in this presence.
      if (desk.presence === "available" || desk.presence === "away") login.resume.presence = desk.presence;
    }
    ws.send(JSON.stringify(login));
  };
  ws.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (_) { return; }
    onFrame(m);
  };
  ws.onclose = (e) => {
    clearInterval(desk.heartbeat);
    if (desk.ws !== ws || desk.stopped) return;
    if (e.code === 4001 || e.code === 4004) {
      session.token = null;
      seqStore.clear();
      view = null;
      return showLogin(main, tryToken, e.code === 4004 ? t("removed") : t("badToken"));
    }
    if (e.code === 4002) {
      desk.stopped = true;
      return fill($("#link"), t("loggedElsewhere"));
    }
    fill($("#link"), h("span", { class: "warning" }, t("reconnecting")));
    const wait = Math.min(10000, 500 * 2 ** desk.retry++);
    setTimeout(() => { if (!desk.stopped) connect(); }, wait);
  };
}

function send(frame) {
  if (desk.ws && desk.ws.readyState === WebSocket.OPEN) {
    desk.ws.send(JSON.stringify(frame));
    return true;
  }
  toast(t("reconnecting"));
  return false;
}

function onFrame(m) {
  if (typeof m.seq === "number" && m.type !== "welcome") {
    if (m.seq <= seqStore.last) return; // seen before a reconnect
    seqStore.save(seqStore.session, m.seq);
  }
  switch (m.type) {
    case "welcome": return onWelcome(m);
    case "presence": desk.presence = m.status; return drawStatus();
    case "offer": return onOffer(m);
    case "offer_ended":
      if (desk.offer && desk.offer.offer_id === m.offer_id) { onMissed(m, desk.offer); desk.offer = null; drawOffer(); }
      return;
    case "assigned":
      if (desk.offer && desk.offer.interaction.id === m.interaction_id) { desk.offer = null; drawOffer(); }
      refreshWork();
      return openWorkspace(m.interaction_id);
    case "completed": work.unread.delete(m.interaction_id); onCompleted(m); return refreshWork();
    case "interaction_ended": onEnded(m); return refreshWork();
    case "message": markUnread(m.interaction_id); return onMessage(m);
    case "note": case "mention": return onNote(m);
    case "typing": return onTyping(m);
    case "call_state": return withWorkspace(m.interaction_id, (w) => { w.call = m.state; drawWorkspace(w); });
    case "reply_queued": case "reply_sent": case "reply_failed": return onReplyState(m);
    case "sla_warning": case "sla_breached": return onDeadline(m);
    case "callback_result": return onCallbackResult(m);
    case "heartbeat_ack": return;
    case "error": return toast(m.message || m.code);
  }
}

function onWelcome(m) {
  desk.retry = 0;
  desk.agent = m.agent;
  desk.capacity = m.capacity || null;
  desk.presence = m.presence;
  // A new session counts from its welcome; a resumed one goes on from the last event
  // applied, since what was missed follows the welcome and must not be taken as seen.
  if (!m.resumed) seqStore.save(m.session, m.seq);
  clearInterval(desk.heartbeat);
  desk.heartbeat = setInterval(() => send({ type: "heartbeat" }), 20000);
  $("#logout").classList.remove("hidden");
  fill($("#me"), m.agent.name, " · ", h("span", { class: "muted" }, `#${m.agent.extension || "—"}`));
  fill($("#link"), h("span", { class: "okay" }, t("connected")));
  if (!view) layout();
  // What the server says the agent holds is the truth; keep what is still held.
  const held = new Set((m.assigned || []).map((i) => i.id));
  for (const id of [...desk.workspaces.keys()]) if (!held.has(id)) closeWorkspace(id);
  // A resume past what the server kept ("complete": false) replays only the newest
  // events: what each held contact is now is read again from the store.
  if (m.resumed && m.complete === false) {
    for (const w of desk.workspaces.values()) { w.call = null; loadWorkspace(w); }
  }
  for (const id of held) openWorkspace(id);
  drawStatus();
}

// ---- layout ----

function layout() {
  const presence = h("select", { id: "presence", "aria-label": t("presence") },
    h("option", { value: "available" }, t("available")),
    h("option", { value: "away" }, t("away")));
  const reason = h("input", { id: "away-reason", placeholder: t("reason"), size: 14, "aria-label": t("reason") });
  const setBtn = h("button", { type: "button", id: "set-presence" }, t("setPresence"));
  setBtn.addEventListener("click", () => {
    const frame = { type: "presence", status: presence.value };
    if (presence.value === "away" && reason.value.trim()) frame.reason = reason.value.trim();
    send(frame);
  });
  presence.addEventListener("change", () => reason.classList.toggle("hidden", presence.value !== "away"));
  view = {
    presence, reason,
    capacity: h("span", { id: "capacity", class: "muted" }),
    wrap: h("span", { id: "wrapup", class: "wrapup warning" }),
    offer: h("section", { id: "offer", "aria-live": "assertive" }),
    missed: h("div", { id: "missed" }),
    empty: h("p", { id: "empty", class: "muted" }, t("noWork")),
    list: h("div", { id: "workspaces", class: "workspaces" }),
    search: h("section", { id: "search", class: "card search", "aria-label": t("searchTitle") }),
    work: h("aside", { id: "work", class: "card work", "aria-label": t("myWork") }),
  };
  fill(main,
    h("div", { class: "card status" },
      h("strong", {}, t("presence")), presence, reason, setBtn, view.capacity, view.wrap,
      h("span", { class: "muted small" }, t("keyboard"), " ? ", t("shortcuts"))),
    view.offer, view.missed,
    h("div", { class: "desk" }, h("div", { class: "main-column" }, view.empty, view.list),
      h("div", { class: "side" }, view.search, view.work)));
  drawMissed();
  drawSearch();
  refreshWork();
}

function redraw() {
  if (!view) { if (!session.token) showLogin(main, tryToken); return; }
  if (desk.ws && desk.ws.readyState === WebSocket.OPEN) fill($("#link"), h("span", { class: "okay" }, t("connected")));
  const ws = [...desk.workspaces.values()];
  layout();
  for (const w of ws) { w.el = null; drawWorkspace(w); }
  drawStatus();
  drawOffer();
}

function drawStatus() {
  if (!view) return;
  view.presence.value = desk.presence === "available" ? "available" : "away";
  view.reason.classList.toggle("hidden", view.presence.value !== "away");
  const used = { phone: 0, chat: 0, email: 0, api: 0 };
  for (const w of desk.workspaces.values()) if (w.interaction) used[w.interaction.channel]++;
  const cap = desk.capacity || {};
  fill(view.capacity, `${t("capacity")}: `,
    ["phone", "chat", "email", "api"].filter((c) => cap[c] || used[c])
      .map((c) => `${t(c)} ${used[c]}/${cap[c] ?? "?"}`).join(" · "));
  view.empty.classList.toggle("hidden", desk.workspaces.size > 0 || !!desk.offer);
}

function tick() {
  if (!view) return;
  if (desk.offer) {
    const left = Math.max(0, Math.ceil((desk.offer.deadline - Date.now()) / 1000));
    const c = $(".countdown", view.offer);
    if (c) c.textContent = String(left);
  }
  const wrap = Math.ceil((desk.wrapUntil - Date.now()) / 1000);
  fill(view.wrap, wrap > 0 ? t("wrapUpLeft", { s: wrap }) : "");
  for (const w of desk.workspaces.values()) {
    for (const el of w.el ? w.el.querySelectorAll("[data-deadline]") : []) {
      el.textContent = deadlineText(el.dataset.deadline);
    }
  }
}

// ---- offers ----

function onOffer(m) {
  desk.offer = { ...m, deadline: Date.now() + (m.expires_in_ms || 20000) };
  drawOffer();
  chime();
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    const c = m.interaction.customer || {};
    const n = new Notification(`${t("offer")}: ${c.name || t(m.interaction.channel)}`,
      { body: [m.interaction.tier, m.interaction.topic, m.interaction.subject].filter(Boolean).join(" · "), tag: m.offer_id });
    n.onclick = () => { window.focus(); n.close(); };
  }
}

function drawOffer() {
  if (!view) return;
  const o = desk.offer;
  if (!o) { fill(view.offer); view.offer.className = ""; drawStatus(); return; }
  const i = o.interaction;
  const c = i.customer || {};
  const accept = h("button", { class: "primary", type: "button", id: "accept" }, t("accept"));
  const decline = h("button", { type: "button", id: "decline" }, t("decline"));
  accept.addEventListener("click", () => acceptOffer());
  decline.addEventListener("click", () => declineOffer());
  view.offer.className = "offer";
  fill(view.offer,
    h("div", {}, h("div", { class: "muted small" }, t("offer")),
      h("strong", { id: "offer-customer" }, c.name || t("unknown")), " ", tierPill(i.tier)),
    h("div", {}, h("div", { class: "muted small" }, t("channel")), t(i.channel)),
    i.topic && h("div", {}, h("div", { class: "muted small" }, t("topic")), i.topic),
    i.subject && h("div", {}, h("div", { class: "muted small" }, t("subject")), i.subject),
    // A chat is offered once its visitor has written: what they wrote comes with it.
    i.channel === "chat" && i.body && h("div", { class: "first-message" }, h("div", { class: "muted small" }, t("visitorWrote")),
      i.body.length > 160 ? `${i.body.slice(0, 160)}…` : i.body),
    handedOnNote(i),
    h("div", {}, h("span", { class: "countdown" }, ""), " ", h("span", { class: "muted small" }, t("expiresIn"))),
    accept, decline);
  tick();
  drawStatus();
  // Never take the keyboard from an agent who is writing: A and D work from anywhere
  // else, and the button is one Tab away.
  const active = document.activeElement;
  const typing = active && (active instanceof HTMLTextAreaElement || active instanceof HTMLInputElement
    || active instanceof HTMLSelectElement || active.isContentEditable);
  if (!typing) accept.focus();
}

function acceptOffer() {
  if (desk.offer) send({ type: "accept", offer_id: desk.offer.offer_id });
}

function declineOffer() {
  if (desk.offer) send({ type: "decline", offer_id: desk.offer.offer_id });
}

/** Two short tones: no file to fetch, and the browser allows it after the login click. */
function chime() {
  try {
    const ctx = chime.ctx || (chime.ctx = new AudioContext());
    [0, 0.18].forEach((at, n) => {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = n ? 880 : 660;
      gain.gain.setValueAtTime(0.15, ctx.currentTime + at);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + at + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.17);
    });
  } catch (_) { /* no sound device: the offer still shows */ }
}

function keys(e) {
  if (!view) return;
  const typing = e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLInputElement
    || e.target instanceof HTMLSelectElement || (e.target && e.target.isContentEditable);
  if (workKeys(e, typing)) return;
  if (!typing && !e.ctrlKey && !e.metaKey && !e.altKey && desk.offer) {
    if (e.key === "a" || e.key === "A") { e.preventDefault(); return acceptOffer(); }
    if (e.key === "d" || e.key === "D") { e.preventDefault(); return declineOffer(); }
  }
  if (e.altKey && /^[1-9]$/.test(e.key)) {
    const w = [...desk.workspaces.values()][Number(e.key) - 1];
    const target = w && w.el && w.el.querySelector("textarea, button");
    if (target) { e.preventDefault(); target.focus(); }
  }
}

// ---- workspaces ----

function withWorkspace(id, f) {
  const w = desk.workspaces.get(id);
  if (w) f(w);
}

async function openWorkspace(id) {
  if (desk.workspaces.has(id)) return;
  const w = {
    id, interaction: null, customer: null, timeline: [], el: null, ended: null, call: null,
    replies: new Map(), shownChat: new Set(), typingUntil: 0, html: new Set(),
    notes: localStorage.getItem(`sb.notes.${id}`) || "",
  };
  desk.workspaces.set(id, w);
  drawWorkspace(w);
  await loadWorkspace(w);
}

async function loadWorkspace(w) {
  try {
    w.interaction = await api("GET", `/api/interactions/${w.id}`);
    const events = w.interaction.history || [];
    if (w.interaction.channel === "phone" && !w.call) {
      w.call = events.some((e) => e.kind === "call_ended") ? "ended"
        : events.some((e) => e.kind === "call_answered") ? "connected" : "ringing";
    }
    const cid = w.interaction.customer_id;
    const [customer, history] = await Promise.all([
      api("GET", `/api/customers/${cid}`),
      api("GET", `/api/customers/${cid}/history?limit=50`),
    ]);
    w.customer = customer;
    w.timeline = history.events || [];
  } catch (e) {
    w.problem = e.message;
  }
  if (desk.workspaces.get(w.id) === w) { drawWorkspace(w); drawStatus(); }
}

function closeWorkspace(id) {
  const w = desk.workspaces.get(id);
  if (!w) return;
  if (w.el) w.el.remove();
  desk.workspaces.delete(id);
  localStorage.removeItem(`sb.notes.${id}`);
  drawStatus();
}

function onCompleted(m) {
  closeWorkspace(m.interaction_id);
  if (m.wrap_up_until) desk.wrapUntil = new Date(m.wrap_up_until).getTime();
  tick();
}

function onEnded(m) {
  if (desk.offer && desk.offer.interaction.id === m.interaction_id) { desk.offer = null; drawOffer(); }
  if (m.reason === "moved") { closeWorkspace(m.interaction_id); return toast(t("movedAway")); }
  if (m.reason === "transferred") { closeWorkspace(m.interaction_id); return; }
  if (m.closed) { closeWorkspace(m.interaction_id); return toast(t("closedByAdmin")); }
  withWorkspace(m.interaction_id, (w) => {
    w.ended = m.reason || t("endedBy");
    if (w.interaction && w.interaction.channel === "phone") w.call = "ended";
    drawWorkspace(w);
  });
}

function onMessage(m) {
  withWorkspace(m.interaction_id, (w) => {
    if (m.channel === "chat") {
      w.typingUntil = 0;
      if (!w.shownChat.has(m.chat_seq)) {
        w.shownChat.add(m.chat_seq);
        w.live = (w.live || []).concat([{ from: m.from || "visitor", text: m.text, at: new Date().toISOString(), seq: m.chat_seq }]);
      }
      drawWorkspace(w);
    } else {
      loadWorkspace(w); // an email in the thread: read it with its files
    }
  });
}

function onTyping(m) {
  withWorkspace(m.interaction_id, (w) => {
    w.typingUntil = Date.now() + 4000;
    const el = w.el && w.el.querySelector(".typing");
    if (el) el.textContent = t("typing");
    setTimeout(() => { if (Date.now() >= w.typingUntil && w.el) { const x = w.el.querySelector(".typing"); if (x) x.textContent = ""; } }, 4100);
  });
}

function onReplyState(m) {
  withWorkspace(m.interaction_id, (w) => {
    const r = w.replies.get(m.reply_id) || { body: "" };
    r.state = m.type === "reply_queued" ? "queued" : m.type === "reply_sent" ? "sent" : (m.retrying ? "retrying" : "failed");
    if (m.error) r.error = m.error;
    if (m.chat_seq) w.shownChat.add(m.chat_seq);
    w.replies.set(m.reply_id, r);
    drawWorkspace(w);
  });
}

/** Sends what the composer holds as a reply, and empties it once sent. */
function sendReply(w, composer) {
  const body = composer.value.trim();
  if (!body) return;
  const replyId = `r-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  if (!send({ type: "reply", interaction_id: w.id, body, reply_id: replyId })) return;
  composer.value = "";
  w.replies.set(replyId, { body, state: "sending", at: new Date().toISOString() });
  drawWorkspace(w);
}

function drawWorkspace(w) {
  if (!view) return;
  const i = w.interaction;
  const fresh = h("article", { class: "card workspace", id: `ws-${w.id}`, "aria-label": t("interaction") });
  if (!i) {
    fresh.append(h("p", { class: w.problem ? "error" : "muted" }, w.problem || t("loading")));
  } else {
    const held = i.state === "assigned";
    fresh.append(h("div", {}, head(w), body(w), workTools(w), held ? completeForm(w) : closeButton(w)), customerPanel(w));
    // A completed conversation is for reading: nothing in it can be sent.
    if (!held) for (const el of fresh.querySelectorAll("textarea, input, select, button:not([name=close])")) el.disabled = true;
  }
  // Keep what the agent was writing, and where the focus was, across a redraw.
  const kept = w.el ? [...w.el.querySelectorAll("textarea, input, select")].map((el) => [el.name, el.value]) : [];
  const focused = w.el && w.el.contains(document.activeElement) ? document.activeElement.name : null;
  if (w.el) w.el.replaceWith(fresh); else view.list.append(fresh);
  w.el = fresh;
  for (const [name, value] of kept) {
    const el = name && fresh.querySelector(`[name="${name}"]`);
    if (el && el.type !== "submit") el.value = value;
  }
  if (focused) { const el = fresh.querySelector(`[name="${focused}"]`); if (el) el.focus(); }
  const list = fresh.querySelector(".messages");
  if (list) list.scrollTop = list.scrollHeight;
}

function closeButton(w) {
  return h("button", { type: "button", name: "close", onclick: () => closeWorkspace(w.id) }, t("close"));
}

function head(w) {
  const i = w.interaction;
  const c = w.customer || {};
  return h("div", { class: "head" },
    h("strong", {}, c.name || (i.channel === "chat" ? t("visitor") : t("unknown"))), tierPill(i.tier),
    h("span", { class: "pill" }, t(i.channel)), i.topic && h("span", { class: "pill" }, i.topic),
    w.ended && h("span", { class: "pill warning", role: "status" }, t("customerEnded", { r: w.ended })),
    i.complaint_id && h("span", { class: "pill warning" }, t("complaint")),
    dueTimes(i));
}

// When each service target of the contact is due, most urgent first: a warned target
// is amber, a missed one red.
function dueTimes(i) {
  const open = (i.deadlines || []).filter((d) => ["pending", "warned", "breached"].includes(d.state) && d.due_at);
  if (!open.length) return null;
  open.sort((a, b) => Date.parse(a.due_at) - Date.parse(b.due_at));
  return h("span", { class: "due" }, open.map((d) => h("span", {
    class: `pill ${d.state === "breached" ? "error" : d.state === "warned" ? "warning" : ""}`,
    title: `${t("due")} ${clock(d.due_at)}${d.calendar ? ` (${t("calendar")}: ${d.calendar})` : ""}`,
    dataset: { target: d.target, due: d.due_at, label: t(`target_${d.target}`) },
  }, dueText(d.target, d.due_at))));
}

// "First response due in 12 min", counting down (see tickDue); "overdue" once past.
function dueText(target, dueAt) {
  const left = (Date.parse(dueAt) - Date.now()) / 1000;
  return `${t(`target_${target}`)} ${left <= 0 ? t("overdue") : `${t("due")} ${clock(dueAt)} · ${t("dueIn", { s: span(left) })}`}`;
}

function tickDue() {
  for (const el of document.querySelectorAll(".due [data-due]")) el.textContent = dueText(el.dataset.target, el.dataset.due);
}
setInterval(tickDue, 1000);

// A target about to be missed, or missed: told, and the contact's times read again.
function onDeadline(m) {
  const what = t(`target_${m.target}`);
  toast(m.type === "sla_breached" ? t("breachedNotice", { t: what }) : t("warnedNotice", { t: what }));
  withWorkspace(m.interaction_id, (w) => loadWorkspace(w));
}

function onCallbackResult(m) {
  toast(m.next_attempt ? t("callbackRetry", { r: t(`callback_${m.result}`) }) : t("callbackDone", { r: t(`callback_${m.result}`) }));
  withWorkspace(m.interaction_id, (w) => loadWorkspace(w));
}

function body(w) {
  const i = w.interaction;
  if (i.channel === "chat") return chatBody(w);
  if (i.channel === "email") return emailBody(w);
  if (i.channel === "phone") return callBody(w);
  return h("div", {}, i.subject && h("h3", {}, i.subject), h("p", { class: "msg customer" }, i.body || ""));
}

function waitedText(w) {
  const a = (w.interaction.history || []).find((e) => e.kind === "assigned");
  return a && a.data && typeof a.data.waited_secs === "number"
    ? h("p", { class: "muted small" }, t("waited", { s: Math.round(a.data.waited_secs) })) : null;
}

// An address typed in the pre-chat form is the visitor's word, not an identity.
function claimText(w) {
  const c = (w.interaction.history || []).find((e) => e.kind === "email_claimed");
  if (!c || !c.data) return null;
  const key = c.data.same_customer ? "claimedSame" : c.data.customer_id ? "claimedOther" : "claimedNew";
  return h("p", { class: `small ${key === "claimedOther" ? "warning" : "muted"}`, role: "note" }, t(key, { e: c.data.email }));
}

function chatBody(w) {
  const rows = [];
  const recorded = new Set();
  for (const e of w.interaction.history || []) {
    if (e.kind !== "chat" || !e.data) continue;
    if (e.data.seq) { w.shownChat.add(e.data.seq); recorded.add(e.data.seq); }
    if (e.data.type === "message") rows.push({ from: e.data.from, text: e.data.text, at: e.at });
    else rows.push({ from: "system", text: String(e.data.type || "").replace(/_/g, " "), at: e.at });
  }
  // Messages that arrived while the interaction was being read are in both.
  for (const m of w.live || []) if (!recorded.has(m.seq)) rows.push(m);
  for (const r of w.replies.values()) {
    rows.push({ from: "agent", text: r.body, at: r.at, state: r.state });
  }
  rows.sort((a, b) => String(a.at).localeCompare(String(b.at)));
  const composer = h("textarea", { name: "reply", rows: 2, placeholder: t("reply"), "aria-label": t("reply"), disabled: !!w.ended });
  let lastTyping = 0;
  composer.addEventListener("input", () => {
    if (Date.now() - lastTyping > 2000) { lastTyping = Date.now(); send({ type: "typing", interaction_id: w.id }); }
  });
  composer.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      sendReply(w, composer);
    }
  });
  const button = h("button", { type: "button", class: "primary", disabled: !!w.ended }, t("send"));
  button.addEventListener("click", () => { sendReply(w, composer); composer.focus(); });
  return h("div", {},
    waitedText(w),
    claimText(w),
    h("div", { class: "messages", role: "log", "aria-live": "polite" },
      rows.map((r) => h("div", { class: `msg ${r.from}` }, r.text,
        h("span", { class: "meta" }, clock(r.at), r.state && r.state !== "sent" ? ` · ${t(r.state === "sending" ? "queued" : r.state)}` : "")))),
    h("div", { class: "typing", "aria-live": "polite" }, w.typingUntil > Date.now() ? t("typing") : ""),
    h("div", { class: "row" }, h("div", { style: "flex:1" }, composer), button));
}

function emailBody(w) {
  const i = w.interaction;
  const mails = (i.history || []).filter((e) => e.kind === "email_received" || e.kind === "email_sent");
  const files = i.attachments || [];
  const composer = h("textarea", { name: "reply", rows: 5, placeholder: t("reply"), "aria-label": t("reply") });
  const button = h("button", { type: "button", class: "primary" }, t("send"));
  const mail = mailComposer(w, composer, mails);
  const go = () => sendMail(w, composer, mail);
  button.addEventListener("click", go);
  composer.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); go(); } });
  return h("div", {},
    h("h3", {}, i.subject || ""),
    mails.map((e) => mailBlock(w, e)),
    files.length > 0 && h("div", {}, h("h3", {}, t("attachments")),
      h("ul", {}, files.map((f) => h("li", {}, f.url
        ? h("button", { type: "button", class: "link", onclick: () => download(f) }, f.name || "file")
        : h("span", { class: "muted" }, f.name || "file"), h("span", { class: "muted small" }, ` ${Math.ceil((f.size || 0) / 1024)} KiB`))))),
    [...w.replies.entries()].filter(([id]) => !mails.some((e) => e.data && e.data.reply_id === id)).map(([id, r]) => h("div", { class: "mail", dataset: { reply: id } },
      h("div", { class: "meta" }, `${t("reply")} · `, h("span", { class: r.state === "sent" ? "okay" : r.state === "failed" ? "error" : "warning" },
        t(r.state === "sending" ? "queued" : r.state)), r.error ? ` — ${r.error}` : ""),
      h("pre", {}, r.body))),
    h("div", {}, mail.head, composer, mail.foot, h("div", { class: "row" }, button, h("span", { class: "muted small" }, "Ctrl+Enter"))));
}

function mailBlock(w, e) {
  const d = e.data || {};
  const key = String(e.seq);
  const asHtml = w.html.has(key) && d.html;
  const toggle = d.html && h("button", { type: "button", class: "small" }, asHtml ? t("showText") : t("showHtml"));
  if (toggle) toggle.addEventListener("click", () => { if (w.html.has(key)) w.html.delete(key); else w.html.add(key); drawWorkspace(w); });
  let content;
  if (asHtml) {
    // The message's own HTML, in a frame that runs no script, submits nothing and
    // loads nothing from elsewhere (no tracking pixels): only its text and layout.
    content = h("iframe", { sandbox: "", referrerpolicy: "no-referrer", title: d.subject || "email" });
    content.srcdoc = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">${d.html}`;
  } else {
    content = h("pre", {}, d.text || "");
  }
  return h("div", { class: "mail" },
    h("div", { class: "meta" }, e.kind === "email_sent" ? `${t("reply")} · ` : `${t("from")}: ${d.from_name ? d.from_name + " " : ""}<${d.from || ""}> · `,
      clock(e.at), " ", toggle),
    content);
}

async function download(f) {
  try {
    const r = await fetch(f.url, { headers: { Authorization: `Bearer ${session.token}` } });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const url = URL.createObjectURL(await r.blob());
    const a = h("a", { href: url, download: f.name || "file" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { toast(e.message); }
}

function callBody(w) {
  const c = w.customer || {};
  const number = (c.identities || []).filter((x) => x.kind === "phone").map((x) => x.value).join(", ");
  const state = w.call || "ringing";
  const notes = h("textarea", { name: "call-notes", rows: 4, placeholder: t("notes"), "aria-label": t("notes") });
  notes.value = w.notes;
  notes.addEventListener("input", () => { w.notes = notes.value; localStorage.setItem(`sb.notes.${w.id}`, notes.value); });
  return h("div", {},
    h("p", {}, `${t("caller")}: `, h("strong", {}, number || t("unknown"))),
    (w.interaction.history || []).some((e) => e.kind === "callback_booked" || e.kind === "callback_requested")
      && h("p", { class: "small", role: "note" }, t("callbackTask")),
    h("p", { class: "call-state", role: "status" }, `${t("callState")}: `,
      h("span", { class: state === "connected" ? "okay" : state === "ended" ? "muted" : "warning" },
        t(state === "connected" ? "connectedCall" : state))),
    waitedText(w),
    h("label", { style: "display:flex" }, t("notes"), notes));
}

function completeForm(w) {
  const disposition = h("select", { name: "disposition", "aria-label": t("disposition") },
    [["resolved", "resolved"], ["follow_up", "followUp"], ["escalated", "escalated"], ["no_answer", "noAnswer"]]
      .map(([v, k]) => h("option", { value: v }, t(k))));
  const isCall = w.interaction.channel === "phone";
  const notes = isCall ? null : h("input", { name: "notes", placeholder: t("notes"), "aria-label": t("notes"), size: 24 });
  const button = h("button", { type: "button", class: "primary", name: "complete" }, t("complete"));
  button.addEventListener("click", () => {
    const text = isCall ? w.notes : notes.value;
    const frame = { type: "complete", interaction_id: w.id, disposition: disposition.value };
    if (text && text.trim()) frame.notes = text.trim();
    send(frame);
  });
  return h("div", { class: "row", style: "margin-top:.75rem" },
    h("label", {}, t("disposition"), disposition), notes && h("label", {}, t("notes"), notes), button);
}

// ---- the customer ----

function deadlineText(iso) {
  const left = (new Date(iso).getTime() - Date.now()) / 1000;
  return left < 0 ? `${t("overdue")} ${span(-left)}` : `${span(left)} ${t("left")}`;
}

function customerPanel(w) {
  const c = w.customer;
  if (!c) return h("aside", { class: "muted" }, t("loading"));
  const me = desk.agent && desk.agent.id;
  const p = c.purchases || {};
  return h("aside", { class: "customer", "aria-label": t("customer") },
    h("h3", {}, t("customer")),
    h("div", {}, h("strong", {}, c.name || (w.interaction.channel === "chat" ? t("visitor") : t("unknown"))), " ", tierPill(c.tier && c.tier.tier)),
    h("div", { class: "small" }, `${t("why")}: `, (c.tier && c.tier.reason) || ""),
    h("div", { class: "small" }, `${t("identities")}: `, (c.identities || []).map((x) => x.value).join(", ") || "—"),
    h("div", { class: "small" }, `${t("lifetime")}: `, c.lifetime_value || "—", ` · ${t("purchases")}: `,
      `${p.count || 0} (${p.total || "0"})`, p.last_at ? ` · ${t("lastPurchase")}: ${clock(p.last_at)}` : ""),
    h("div", { class: "small" }, `${t("owner")}: `, c.owner ? (c.owner === me ? t("you") : c.owner_name || c.owner.slice(0, 8)) : "—"),
    h("h3", {}, t("openMatters")),
    (c.open_matters || []).length === 0 ? h("p", { class: "muted small" }, t("noOpen"))
      : h("ul", { class: "small" }, c.open_matters.map((m) => h("li", {},
        [t(m.channel), m.topic, m.subject, m.state].filter(Boolean).join(" · "),
        m.deadline && h("span", { class: new Date(m.deadline) < new Date() ? "error" : "warning" },
          ` · ${t("deadline")} ${clock(m.deadline)} (`, h("span", { dataset: { deadline: m.deadline } }, deadlineText(m.deadline)), ")")))),
    h("h3", {}, t("history")),
    h("ol", { class: "timeline" }, w.timeline.map((e) => h("li", {},
      h("div", { class: "when" }, clock(e.at)), eventText(e)))));
}

function eventText(e) {
  const d = e.data || {};
  if (e.kind === "chat" && d.type === "message") return `${t("chat")} · ${d.from}: ${String(d.text || "").slice(0, 120)}`;
  if (e.kind === "chat") return `${t("chat")} · ${String(d.type || "").replace(/_/g, " ")}`;
  const detail = d.subject || d.text || d.note || d.disposition || d.reason || d.notes || "";
  return `${eventName(e.kind)}${detail ? ": " + String(detail).slice(0, 120) : ""}`;
}

window.addEventListener("DOMContentLoaded", start);
