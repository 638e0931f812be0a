// Search (GET /api/search): the words of conversations, customers' names and
// identities, Chinese included. On the agent desktop, a box above the work list
// (`/` goes to it) finds the agent's own past conversations and opens them; in the
// console's Customers tab, a supervisor finds any conversation and opens its customer.
"use strict";

Object.assign(STRINGS.en, {
  searchTitle: "Search", searchHelp: "Words of a conversation, a name, an email, a phone number",
  searchConversations: "Search conversations", foundConversations: "Conversations",
  foundCustomers: "Customers", nothingFound: "Nothing found.", olderResults: "Older results",
  shortQuery: "Words of one or two characters are looked for in recent messages, and at the start of names.",
  moreCustomers: "More customers match: add a word.", keySearch: "Search", searching: "Searching…",
  matched_interaction_received: "subject", matched_email_received: "mail in",
  matched_email_sent: "mail out", matched_chat: "chat", matched_note: "note",
  matched_transferred: "hand-over note", matched_completed: "wrap-up notes",
});
Object.assign(STRINGS.zh, {
  searchTitle: "搜索", searchHelp: "会话中的词、姓名、邮箱、电话号码",
  searchConversations: "搜索会话", foundConversations: "会话",
  foundCustomers: "客户", nothingFound: "未找到。", olderResults: "更早的结果",
  shortQuery: "一两个字的词只在最近的消息中查找，姓名则从开头匹配。",
  moreCustomers: "还有更多客户符合：请再加一个词。", keySearch: "搜索", searching: "正在搜索…",
  matched_interaction_received: "主题", matched_email_received: "来信",
  matched_email_sent: "回信", matched_chat: "聊天", matched_note: "备注",
  matched_transferred: "转交备注", matched_completed: "完成备注",
});

/** What each page's search shows, kept across redraws (a language change). */
const finders = {
  desk: { q: "", result: null, error: null, busy: false },
  console: { q: "", result: null, error: null, busy: false },
};

/**
 * Draws a search box and what it found into `el`. `open.interaction(i)` and
 * `open.customer(c)` (either may be missing) open what is picked.
 */
function drawFinder(el, state, open) {
  const focused = el.contains(document.activeElement);
  const input = h("input", {
    type: "search", name: "q", value: state.q, maxlength: 200, autocomplete: "off",
    placeholder: t("searchHelp"), "aria-label": t("searchHelp"),
  });
  const form = h("form", { class: "row", role: "search" }, input, h("button", { type: "submit" }, t("search")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    state.q = input.value.trim();
    state.result = null;
    if (state.q) findIn(el, state, open, false);
    else drawFinder(el, state, open);
  });
  const parts = [form];
  if (state.busy) parts.push(h("p", { class: "muted small", role: "status" }, t("searching")));
  if (state.error) parts.push(h("p", { class: "error small", role: "alert" }, state.error));
  const r = state.result;
  if (r) {
    if (!r.indexed) parts.push(h("p", { class: "muted small" }, t("shortQuery")));
    if (r.customers.length) {
      parts.push(h("h3", {}, t("foundCustomers")), h("ul", { class: "worklist", id: "search-customers" },
        r.customers.map((c) => h("li", {}, open.customer
          ? h("button", { type: "button", class: "link", onclick: () => open.customer(c) }, c.name || t("unknown"))
          : h("span", {}, c.name || t("unknown"))))));
      if (r.customers_more) parts.push(h("p", { class: "muted small" }, t("moreCustomers")));
    }
    if (r.interactions.length) {
      parts.push(h("h3", {}, t("foundConversations")), h("ul", { class: "worklist", id: "search-results" },
        r.interactions.map((i) => h("li", { dataset: { interaction: i.id } },
          h("button", { type: "button", class: "link", onclick: () => open.interaction && open.interaction(i) },
            h("strong", {}, i.customer_name || t(i.channel === "chat" ? "visitor" : "unknown")), " ",
            h("span", { class: "pill" }, t(i.channel)), " ",
            h("span", { class: "small" }, i.subject || ""),
            h("span", { class: "small muted" }, ` · ${clock(i.at)} · ${t(`matched_${i.matched}`)}`),
            h("span", { class: "small snippet" }, i.snippet))))));
    }
    if (!r.interactions.length && !r.customers.length) parts.push(h("p", { class: "muted small" }, t("nothingFound")));
    if (r.next_before) {
      parts.push(h("button", { type: "button", name: "older", onclick: () => findIn(el, state, open, true) }, t("olderResults")));
    }
  }
  fill(el, h("h2", {}, el.dataset.title ? t(el.dataset.title) : t("searchTitle")), ...parts);
  if (focused) input.focus();
}

/** Asks the server, then draws; `more` fetches the next page and adds it. */
async function findIn(el, state, open, more) {
  const params = new URLSearchParams({ q: state.q, limit: "20" });
  if (more && state.result && state.result.next_before) params.set("before", String(state.result.next_before));
  state.busy = true;
  state.error = null;
  drawFinder(el, state, open);
  try {
    const r = await api("GET", `/api/search?${params}`);
    if (more && state.result) {
      // An interaction matching on both sides of a page's edge is shown once.
      const seen = new Set(state.result.interactions.map((i) => i.id));
      r.interactions = state.result.interactions.concat(r.interactions.filter((i) => !seen.has(i.id)));
      r.customers = state.result.customers;
      r.customers_more = state.result.customers_more;
    }
    state.result = r;
  } catch (e) {
    state.error = e.message;
  }
  state.busy = false;
  drawFinder(el, state, open);
}

/** The desktop's search, above the work list; what it finds opens as a workspace. */
function drawSearch() {
  if (!view || !view.search) return;
  drawFinder(view.search, finders.desk, { interaction: (i) => openPast(i.id) });
}

/** The console's conversation search, in the Customers tab: it opens the customer. */
function consoleSearch() {
  const el = h("div", { class: "card", id: "conversation-search", dataset: { title: "searchConversations" } });
  const openCustomer = async (id) => {
    try {
      drawCustomer(await api("GET", `/api/customers/${id}`));
      customerEl.scrollIntoView({ block: "nearest" });
    } catch (e) { toast(e.message); }
  };
  drawFinder(el, finders.console, {
    interaction: (i) => openCustomer(i.customer_id),
    customer: (c) => openCustomer(c.id),
  });
  return el;
}

// `/` goes to the desktop's search box, unless the agent is typing.
document.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
  const el = e.target;
  if (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement || el instanceof HTMLSelectElement
    || (el && el.isContentEditable)) return;
  const input = document.querySelector("#search input[name=q]");
  if (!input) return;
  e.preventDefault();
  input.focus();
});
