// The agent's own work beside the offers (loaded after desktop.js): the work list (open
// conversations, most urgent first, and those completed this week), handing a
// conversation to a colleague, a skill or the queue, internal notes with @mentions, the
// missed-offer notice and the shortcut sheet.
"use strict";

Object.assign(STRINGS.en, {
  myWork: "My work", openWork: "Open", recentWork: "Completed this week", noOpenWork: "Nothing open.",
  noRecentWork: "Nothing completed this week.", unread: "new", transfer: "Transfer", transferTo: "Transfer to",
  toQueue: "Back to the queue", toSkill: "Team: {s}", transferNote: "Note for whoever takes it",
  transferred: "Handed on.", notesTitle: "Internal notes", addNote: "Add note",
  notePlaceholder: "Only agents see this. @name tells a colleague.", mentioned: "{n} mentioned you: {t}",
  missedOffer: "Missed offer ({r}) at {at}", dismiss: "Dismiss", shortcuts: "Keyboard shortcuts",
  keyAccept: "Accept the offer (not while typing)", keyDecline: "Decline the offer (not while typing)",
  keyWorkspace: "Go to conversation 1…9", keyNext: "Next conversation", keyNote: "Write a note in this conversation",
  keyComplete: "Complete this conversation", keyHelp: "Show or hide this sheet", close: "Close",
  readOnly: "Completed: shown for reading.", handedOn: "Handed on by {n}", visitorWrote: "The visitor wrote",
  teamQueue: "Team queue", take: "Take", onOffer: "on offer", nothingWaiting: "Nothing waits.",
});
Object.assign(STRINGS.zh, {
  myWork: "我的工作", openWork: "进行中", recentWork: "本周已完成", noOpenWork: "没有进行中的会话。",
  noRecentWork: "本周没有已完成的会话。", unread: "新", transfer: "转交", transferTo: "转交给",
  toQueue: "退回队列", toSkill: "团队：{s}", transferNote: "给接手同事的备注",
  transferred: "已转交。", notesTitle: "内部备注", addNote: "添加备注",
  notePlaceholder: "仅坐席可见。@姓名 可提醒同事。", mentioned: "{n} 提到了您：{t}",
  missedOffer: "错过的分配（{r}），{at}", dismiss: "关闭", shortcuts: "键盘快捷键",
  keyAccept: "接受分配（输入时无效）", keyDecline: "拒绝分配（输入时无效）",
  keyWorkspace: "切换到第 1…9 个会话", keyNext: "下一个会话", keyNote: "在当前会话写备注",
  keyComplete: "完成当前会话", keyHelp: "显示或隐藏本表", close: "关闭",
  readOnly: "已完成：仅供查看。", handedOn: "{n} 转交的备注", visitorWrote: "访客留言",
  teamQueue: "团队队列", take: "接手", onOffer: "分配中", nothingWaiting: "没有等待的联系。",
});

const work = { colleagues: null, colleaguesAt: 0, unread: new Set(), missed: [], timer: null, pull: false };

/** How long the list of colleagues is kept before it is read again (a colleague added
 * today shows up in the transfer list without a reload). */
const COLLEAGUES_FOR_MS = 30000;

/** The work list, read again now (and every 30 s while logged in; every 5 s while the
 * rules let agents take waiting contacts themselves, so the team's queue stays current). */
async function refreshWork() {
  if (!view || !view.work) return;
  clearTimeout(work.timer);
  work.timer = setTimeout(refreshWork, work.pull ? 5000 : 30000);
  try {
    const [r, team] = await Promise.all([api("GET", "/api/me/work"), api("GET", "/api/me/team-queue")]);
    work.pull = team.channels.length > 0;
    drawWork(r, team);
  } catch (e) {
    fill(view.work, h("p", { class: "error small" }, e.message));
  }
}

/** The team's waiting contacts of the channels the rules let agents take themselves. */
function teamQueue(team) {
  if (!team || !team.channels.length) return null;
  const row = (i) => {
    const take = h("button", { type: "button", name: "take", disabled: i.on_offer ? true : null }, t("take"));
    take.addEventListener("click", async () => {
      take.disabled = true;
      try {
        await api("POST", `/api/interactions/${i.id}/take`);
      } catch (e) {
        toast(e.message);
      }
      refreshWork();
    });
    return h("li", { dataset: { interaction: i.id } },
      h("strong", {}, i.customer_name || t("unknown")), " ", tierPill(i.tier), " ",
      h("span", { class: "pill" }, t(i.channel)), " ", h("span", { class: "small" }, i.subject || i.topic || ""),
      h("span", { class: "small muted" }, ` · ${clock(i.waiting_since)}`),
      i.on_offer ? h("span", { class: "pill" }, t("onOffer")) : null, " ", take);
  };
  return [
    h("h3", {}, `${t("teamQueue")} (${team.channels.map((c) => t(c)).join(", ")})`),
    team.waiting.length ? h("ul", { class: "worklist", id: "team-queue" }, team.waiting.map(row))
      : h("p", { class: "muted small" }, t("nothingWaiting")),
  ];
}

function drawWork(r, team) {
  const row = (i, past) => h("li", { dataset: { interaction: i.id }, class: work.unread.has(i.id) ? "unread" : "" },
    h("button", { type: "button", class: "link", onclick: () => past ? openPast(i.id) : focusWorkspace(i.id) },
      h("strong", {}, i.customer_name || t(i.channel === "chat" ? "visitor" : "unknown")), " ",
      tierPill(i.tier), " ", h("span", { class: "pill" }, t(i.channel)), " ",
      h("span", { class: "small" }, i.subject || i.topic || ""),
      work.unread.has(i.id) ? h("span", { class: "pill warning" }, t("unread")) : null,
      i.due_at ? h("span", { class: "small muted" }, ` · ${t("due")} ${clock(i.due_at)}`) : null,
      past ? h("span", { class: "small muted" }, ` · ${clock(i.updated_at)}`) : null));
  fill(view.work,
    h("h2", {}, t("myWork")),
    h("h3", {}, t("openWork")),
    r.open.length ? h("ul", { class: "worklist", id: "work-open" }, r.open.map((i) => row(i, false)))
      : h("p", { class: "muted small" }, t("noOpenWork")),
    ...(teamQueue(team) || []),
    h("h3", {}, t("recentWork")),
    r.recent.length ? h("ul", { class: "worklist", id: "work-recent" }, r.recent.map((i) => row(i, true)))
      : h("p", { class: "muted small" }, t("noRecentWork")),
    signatureEditor());
}

/** The agent's own mail signature, edited beside the work list. */
function signatureEditor() {
  const text = h("textarea", { name: "signature", rows: 3, "aria-label": t("signature") });
  mySignature().then((s) => { if (!text.value) text.value = s; });
  const save = h("button", { type: "button", name: "save-signature" }, t("saveSignature"));
  save.addEventListener("click", async () => {
    try {
      work.signature = (await api("PUT", "/api/me/signature", { signature: text.value })).signature;
      toast(t("saved"));
    } catch (e) { toast(e.message); }
  });
  return h("details", { class: "signature" }, h("summary", {}, t("signature")), text, save);
}

function focusWorkspace(id) {
  work.unread.delete(id);
  const w = desk.workspaces.get(id);
  if (!w) return openWorkspace(id);
  if (w.el) {
    w.el.scrollIntoView({ block: "nearest" });
    const target = w.el.querySelector("textarea, button");
    if (target) target.focus();
  }
  refreshWork();
}

/** A completed conversation, opened for reading. */
async function openPast(id) {
  if (desk.workspaces.has(id)) return focusWorkspace(id);
  await openWorkspace(id);
}

/** A message came on a conversation: marked new in the list until opened. */
function markUnread(id) {
  const w = desk.workspaces.get(id);
  if (w && w.el && w.el.contains(document.activeElement)) return;
  work.unread.add(id);
  refreshWork();
}

/** The tools of a held conversation: notes, and handing it on. */
function workTools(w) {
  const i = w.interaction;
  if (i.state !== "assigned") return h("p", { class: "muted small", role: "note" }, t("readOnly"));
  const notes = (i.history || []).filter((e) => e.kind === "note");
  const text = h("textarea", { name: "note", rows: 2, placeholder: t("notePlaceholder"), "aria-label": t("notesTitle") });
  const add = h("button", { type: "button", name: "add-note" }, t("addNote"));
  const addNote = () => {
    const v = text.value.trim();
    if (!v) return;
    if (send({ type: "note", interaction_id: w.id, text: v })) text.value = "";
  };
  add.addEventListener("click", addNote);
  text.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); addNote(); } });
  return h("details", { class: "tools", open: notes.length ? true : null },
    h("summary", {}, `${t("notesTitle")} (${notes.length}) · ${t("transfer")}`),
    h("ul", { class: "notes" }, notes.map((n) => h("li", { class: "note" },
      h("span", { class: "muted small" }, `${clock(n.at)} · ${colleagueName(n.actor)}: `), n.data.text))),
    h("div", { class: "row" }, text, add),
    transferForm(w));
}

function colleagueName(id) {
  const a = (work.colleagues || []).find((c) => c.id === id);
  return a ? a.name : (desk.agent && desk.agent.id === id ? desk.agent.name : id);
}

function transferForm(w) {
  const target = h("select", { name: "transfer-to", "aria-label": t("transferTo") }, h("option", { value: "queue" }, t("toQueue")));
  const fillTargets = () => {
    const me = desk.agent && desk.agent.id;
    const skills = [...new Set((work.colleagues || []).flatMap((c) => c.skills || []))].sort();
    for (const s of skills) target.append(h("option", { value: `skill:${s}` }, t("toSkill", { s })));
    for (const c of work.colleagues || []) if (c.id !== me) target.append(h("option", { value: `agent:${c.id}` }, c.name));
  };
  if (work.colleagues && Date.now() - work.colleaguesAt < COLLEAGUES_FOR_MS) fillTargets();
  else loadColleagues().then(() => { if (target.options.length === 1) fillTargets(); });
  const note = h("input", { name: "transfer-note", placeholder: t("transferNote"), "aria-label": t("transferNote"), size: 28 });
  const go = h("button", { type: "button", name: "transfer" }, t("transfer"));
  go.addEventListener("click", () => {
    const frame = { type: "transfer", interaction_id: w.id };
    const [kind, value] = target.value.split(/:(.*)/s);
    if (kind === "agent") frame.to_agent = value;
    if (kind === "skill") frame.to_skill = value;
    if (note.value.trim()) frame.note = note.value.trim();
    if (send(frame)) toast(t("transferred"));
  });
  return h("div", { class: "row transfer" }, h("label", {}, t("transferTo"), target), note, go);
}

async function loadColleagues() {
  try {
    work.colleagues = (await api("GET", "/api/colleagues")).agents;
    work.colleaguesAt = Date.now();
  } catch (_) {
    work.colleagues = work.colleagues || [];
  }
}

/** The note left by whoever handed this conversation on (in an offer's history), if any. */
function handedOnNote(i) {
  const e = (i.history || []).filter((x) => x.kind === "transferred" && x.interaction_id === i.id && x.data && x.data.note)
    .sort((a, b) => (b.seq || 0) - (a.seq || 0))[0];
  // Named once the colleagues are known (read now, the offer drawn again).
  if (e && !work.colleagues) loadColleagues().then(() => { if (desk.offer && desk.offer.interaction.id === i.id) drawOffer(); });
  return e ? h("div", { class: "handed-on" }, h("div", { class: "muted small" }, t("handedOn", { n: colleagueName(e.data.from) })), e.data.note) : null;
}

/** A note on a conversation (ours, or one naming us). */
function onNote(m) {
  if (m.type === "mention") toast(t("mentioned", { n: m.from_name, t: m.text }));
  withWorkspace(m.interaction_id, (w) => loadWorkspace(w));
}

/** An offer that lapsed unanswered: a notice stays until dismissed. */
function onMissed(m, offer) {
  if (m.reason !== "timed_out") return;
  const c = offer && offer.interaction && offer.interaction.customer;
  work.missed.push({ at: new Date().toISOString(), who: (c && c.name) || "", reason: m.reason });
  drawMissed();
}

function drawMissed() {
  if (!view || !view.missed) return;
  fill(view.missed, work.missed.map((n, k) => h("p", { class: "warning small missed", role: "status" },
    t("missedOffer", { r: n.who || t(n.reason === "timed_out" ? "expiresIn" : n.reason), at: clock(n.at) }), " ",
    h("button", { type: "button", onclick: () => { work.missed.splice(k, 1); drawMissed(); } }, t("dismiss")))));
}

/** The shortcut sheet (`?`). */
function toggleShortcuts() {
  const open = $("#shortcuts");
  if (open) { open.remove(); return; }
  const keysList = [["A", "keyAccept"], ["D", "keyDecline"], ["Alt+1…9", "keyWorkspace"], ["Alt+N", "keyNext"],
    ["Alt+M", "keyNote"], ["Alt+C", "keyComplete"], ["/", "keySearch"], ["?", "keyHelp"]];
  const close = h("button", { type: "button", onclick: () => $("#shortcuts").remove() }, t("close"));
  document.body.append(h("div", { id: "shortcuts", class: "card sheet", role: "dialog", "aria-label": t("shortcuts") },
    h("h2", {}, t("shortcuts")),
    h("table", {}, h("tbody", {}, keysList.map(([k, d]) => h("tr", {}, h("th", {}, h("kbd", {}, k)), h("td", {}, t(d)))))),
    close));
  close.focus();
}

/** The workspace holding the focus, else the first. */
function currentWorkspace() {
  const all = [...desk.workspaces.values()];
  return all.find((w) => w.el && w.el.contains(document.activeElement)) || all[0];
}

/** Keys beyond accept and decline; true when handled. */
function workKeys(e, typing) {
  if (!typing && e.key === "?") { e.preventDefault(); toggleShortcuts(); return true; }
  if (e.key === "Escape" && $("#shortcuts")) { $("#shortcuts").remove(); return true; }
  if (!e.altKey) return false;
  const key = e.key.toLowerCase();
  const all = [...desk.workspaces.values()];
  if (key === "n" && all.length) {
    const at = all.indexOf(currentWorkspace());
    const next = all[(at + 1) % all.length];
    e.preventDefault();
    focusWorkspace(next.id);
    return true;
  }
  const w = currentWorkspace();
  if (key === "m" && w && w.el) {
    const el = w.el.querySelector("textarea[name=note]");
    if (el) { e.preventDefault(); el.closest("details").open = true; el.focus(); return true; }
  }
  if (key === "c" && w && w.el) {
    const el = w.el.querySelector("button[name=complete]");
    if (el) { e.preventDefault(); el.click(); return true; }
  }
  return false;
}

// ---- the mail composer: recipients, copies, files, the quoted original, a signature,
// and a draft kept across reloads ----

Object.assign(STRINGS.en, {
  to: "To", cc: "Cc", attach: "Attach files", quote: "Quote the customer's message", wrote: "On {at}, {who} wrote:",
  uploading: "Uploading…", removeFile: "Remove", signature: "Signature", saveSignature: "Save signature",
});
Object.assign(STRINGS.zh, {
  to: "收件人", cc: "抄送", attach: "添加附件", quote: "引用客户的邮件", wrote: "{at}，{who} 写道：",
  uploading: "正在上传…", removeFile: "移除", signature: "签名", saveSignature: "保存签名",
});

/** The agent's signature, read once. */
async function mySignature() {
  if (work.signature === undefined) {
    try { work.signature = (await api("GET", "/api/me/signature")).signature || ""; } catch (_) { work.signature = ""; }
  }
  return work.signature;
}

const splitAddresses = (s) => s.split(/[,;\s]+/).map((x) => x.trim()).filter(Boolean);

/** The parts around a mail reply's text box: To and Cc above; files and the quote below. */
function mailComposer(w, composer, mails) {
  const received = mails.filter((e) => e.kind === "email_received");
  const last = received[received.length - 1];
  const customer = last && last.data ? last.data.from : "";
  w.outFiles = w.outFiles || [];
  const to = h("input", { name: "mail-to", value: customer || "", size: 40, "aria-label": t("to") });
  const cc = h("input", { name: "mail-cc", size: 40, "aria-label": t("cc"), placeholder: "name@example.com" });
  const quote = h("input", { type: "checkbox", name: "mail-quote" });
  quote.checked = true;
  const chips = h("span", { class: "files" });
  const drawChips = () => fill(chips, w.outFiles.map((f, k) => h("span", { class: "pill file" }, f.name,
    h("button", { type: "button", class: "link small", "aria-label": `${t("removeFile")} ${f.name}`,
      onclick: () => { w.outFiles.splice(k, 1); drawChips(); } }, " ×"))));
  drawChips();
  const picker = h("input", { type: "file", name: "mail-files", multiple: true, "aria-label": t("attach") });
  picker.addEventListener("change", async () => {
    for (const file of [...picker.files]) {
      try {
        const r = await fetch(`/api/interactions/${w.id}/files?name=${encodeURIComponent(file.name)}`, {
          method: "POST", body: file,
          headers: { Authorization: `Bearer ${session.token}`, "Content-Type": file.type || "application/octet-stream" },
        });
        const body = await r.json();
        if (!r.ok) throw new Error(body.message || `HTTP ${r.status}`);
        w.outFiles.push(body);
      } catch (e) {
        toast(`${file.name}: ${e.message}`);
      }
    }
    picker.value = "";
    drawChips();
  });
  // The draft, kept in this browser until sent; a new reply starts with the signature.
  const key = `sb.draft.${w.id}`;
  const draft = localStorage.getItem(key);
  if (draft) composer.value = draft;
  else mySignature().then((s) => { if (s && !composer.value) { composer.value = `\n\n-- \n${s}`; composer.setSelectionRange(0, 0); } });
  composer.addEventListener("input", () => localStorage.setItem(key, composer.value));
  return {
    to, cc, quote, last,
    head: h("div", { class: "mail-head" }, h("label", {}, t("to"), to), h("label", {}, t("cc"), cc)),
    foot: h("div", { class: "row mail-foot" }, h("label", {}, picker, t("attach")), chips,
      h("label", {}, quote, t("quote"))),
  };
}

/** Sends a mail reply with its recipients, copies, files and the quoted original. */
function sendMail(w, composer, mail) {
  let body = composer.value.trim();
  if (!body) return;
  if (mail.quote.checked && mail.last && mail.last.data && mail.last.data.text) {
    const d = mail.last.data;
    const quoted = String(d.text).trimEnd().split(/\r?\n/).map((l) => `> ${l}`).join("\n");
    body += `\n\n${t("wrote", { at: clock(mail.last.at), who: d.from_name || d.from || "" })}\n${quoted}`;
  }
  const replyId = `r-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const frame = { type: "reply", interaction_id: w.id, body, reply_id: replyId };
  const to = splitAddresses(mail.to.value);
  const cc = splitAddresses(mail.cc.value);
  const customer = mail.last && mail.last.data ? mail.last.data.from : null;
  if (to.length && !(to.length === 1 && to[0] === customer)) frame.to = to;
  if (cc.length) frame.cc = cc;
  if (w.outFiles.length) frame.attachments = w.outFiles.map((f) => f.id);
  if (!send(frame)) return;
  composer.value = "";
  localStorage.removeItem(`sb.draft.${w.id}`);
  w.outFiles = [];
  w.replies.set(replyId, { body, state: "sending", at: new Date().toISOString() });
  drawWorkspace(w);
}
