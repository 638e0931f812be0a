// Canned answers, on both pages. On the desktop: typing "/word" or "::word" in a reply
// lists the answers whose shortcut starts with it (the agent's language first); Tab or
// Enter inserts the chosen one with its variables filled, Escape leaves the text as
// typed. In the console: the shared answers, added, edited and removed by admins.
"use strict";

Object.assign(STRINGS.en, {
  canned: "Canned answers", shortcut: "Shortcut", title: "Title", body: "Text", languageCol: "Language",
  team: "Team", personal: "personal", anyLanguage: "any", everyone: "everyone", newAnswer: "New answer",
  cannedHelp: "Agents insert an answer by typing / or :: and its shortcut in a reply. The text may use {customer_name}, {agent_name} and {interaction_number}.",
  noCanned: "No canned answers yet.", confirmRemoveAnswer: "Remove this answer?",
});
Object.assign(STRINGS.zh, {
  canned: "快捷回复", shortcut: "快捷词", title: "标题", body: "内容", languageCol: "语言",
  team: "团队", personal: "个人", anyLanguage: "任意", everyone: "所有人", newAnswer: "新建回复",
  cannedHelp: "坐席在回复中输入 / 或 :: 加快捷词即可插入。内容可使用 {customer_name}、{agent_name} 和 {interaction_number}。",
  noCanned: "还没有快捷回复。", confirmRemoveAnswer: "删除此回复？",
});

const canned = { answers: null, menu: null, pick: 0, target: null, token: null };

async function loadCanned() {
  try {
    canned.answers = (await api("GET", "/api/canned")).answers;
  } catch (_) {
    canned.answers = [];
  }
  return canned.answers;
}

// ---- the desktop: inserting ----

/** The "/word" or "::word" just before the caret, if any. */
function cannedToken(el) {
  const before = el.value.slice(0, el.selectionStart);
  const m = before.match(/(?:^|\s)(\/|::)([\p{L}\p{N}_-]*)$/u);
  return m ? { start: before.length - m[1].length - m[2].length, word: m[2].toLowerCase() } : null;
}

/** The answers for `word`, the agent's language (then any) first. */
function cannedMatches(word) {
  const mine = lang === "zh" ? ["zh", "zh-cn", "zh-hans"] : ["en"];
  const rank = (a) => (a.language && mine.includes(a.language.toLowerCase()) ? 0 : a.language ? 2 : 1);
  return (canned.answers || [])
    .filter((a) => a.shortcut.startsWith(word))
    .sort((a, b) => rank(a) - rank(b) || a.shortcut.localeCompare(b.shortcut))
    .slice(0, 8);
}

/** An answer's text with its variables filled for the conversation `el` belongs to. */
function cannedText(a, el) {
  const box = el.closest(".workspace");
  const w = box && desk.workspaces.get(box.id.replace(/^ws-/, ""));
  const vars = {
    customer_name: (w && w.customer && w.customer.name) || "",
    agent_name: (desk.agent && desk.agent.name) || "",
    interaction_number: w ? w.id.slice(-8).toUpperCase() : "",
  };
  return a.body.replace(/\{(customer_name|agent_name|interaction_number)\}/g, (_, k) => vars[k]);
}

function closeCannedMenu() {
  if (canned.menu) canned.menu.remove();
  canned.menu = null;
  canned.target = null;
}

function drawCannedMenu(el, list) {
  closeCannedMenu();
  if (!list.length) return;
  canned.target = el;
  canned.pick = Math.min(canned.pick, list.length - 1);
  canned.menu = h("ul", { class: "canned-menu", role: "listbox", "aria-label": t("canned") },
    list.map((a, k) => h("li", {
      role: "option", "aria-selected": String(k === canned.pick), class: k === canned.pick ? "picked" : "",
      onmousedown: (e) => { e.preventDefault(); insertCanned(el, a); },
    }, h("strong", {}, `/${a.shortcut}`), " ", a.title, a.language ? h("span", { class: "muted small" }, ` · ${a.language}`) : null)));
  el.insertAdjacentElement("afterend", canned.menu);
}

function insertCanned(el, a) {
  const tok = cannedToken(el);
  if (!tok) return closeCannedMenu();
  const text = cannedText(a, el);
  const end = el.selectionStart;
  el.value = el.value.slice(0, tok.start) + text + el.value.slice(end);
  const caret = tok.start + text.length;
  el.setSelectionRange(caret, caret);
  el.dispatchEvent(new Event("input", { bubbles: true }));
  closeCannedMenu();
}

if (typeof desk !== "undefined") {
  document.addEventListener("input", async (e) => {
    const el = e.target;
    if (!(el instanceof HTMLTextAreaElement) || el.name !== "reply") return;
    const tok = cannedToken(el);
    if (!tok) return closeCannedMenu();
    if (!canned.answers) await loadCanned();
    canned.pick = 0;
    drawCannedMenu(el, cannedMatches(tok.word));
  });
  // Before the composer's own keys (Enter sends): while the list is open, its keys.
  document.addEventListener("keydown", (e) => {
    if (!canned.menu || e.target !== canned.target) return;
    const tok = cannedToken(e.target);
    const list = tok ? cannedMatches(tok.word) : [];
    if (!list.length) return closeCannedMenu();
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      canned.pick = (canned.pick + (e.key === "ArrowDown" ? 1 : list.length - 1)) % list.length;
      drawCannedMenu(e.target, list);
    } else if (e.key === "Tab" || e.key === "Enter") {
      insertCanned(e.target, list[canned.pick]);
    } else if (e.key === "Escape") {
      closeCannedMenu();
    } else {
      return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }, true);
}

// ---- the console: managing the shared answers ----

/** The canned answers card, drawn into `pane`. */
async function buildCanned(pane) {
  const list = h("tbody", {});
  const problem = h("div", {});
  const editor = h("div", {});
  const draw = async () => {
    const answers = (await loadCanned()).filter((a) => !a.personal);
    fill(list, answers.length ? answers.map((a) => h("tr", { dataset: { canned: a.shortcut } },
      h("td", {}, h("code", {}, `/${a.shortcut}`)), h("td", {}, a.title), h("td", { class: "small" }, a.body),
      h("td", {}, a.language || t("anyLanguage")), h("td", {}, a.team || t("everyone")),
      h("td", {}, h("button", { type: "button", onclick: () => edit(a) }, t("edit")),
        h("button", { type: "button", onclick: async () => {
          if (!confirm(t("confirmRemoveAnswer"))) return;
          try { await api("DELETE", `/api/canned/${a.id}`); draw(); } catch (e) { faultsOf(problem, e); }
        } }, t("remove")))))
      : h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("noCanned"))));
  };
  const edit = (a) => {
    const f = (name, value, attrs) => h("input", { name, value: value || "", ...(attrs || {}) });
    const shortcut = f("shortcut", a && a.shortcut, { required: true, size: 16 });
    const title = f("title", a && a.title, { required: true, size: 30 });
    const body = h("textarea", { name: "body", rows: 4, cols: 60, required: true });
    body.value = (a && a.body) || "";
    const language = f("language", a && a.language, { size: 8, placeholder: "zh-CN" });
    const team = f("team", a && a.team, { size: 12 });
    const form = h("form", { class: "card editor", id: "canned-editor" },
      h("label", {}, t("shortcut"), shortcut), h("label", {}, t("title"), title), h("label", {}, t("body"), body),
      h("label", {}, t("languageCol"), language), h("label", {}, t("team"), team), problem,
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, t("save")),
        h("button", { type: "button", onclick: () => editor.replaceChildren() }, t("cancel"))));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const payload = { shortcut: shortcut.value, title: title.value, body: body.value,
        language: language.value.trim() || null, team: team.value.trim() || null };
      try {
        if (a) await api("PUT", `/api/canned/${a.id}`, payload);
        else await api("POST", "/api/canned", payload);
        editor.replaceChildren();
        toast(t("saved"));
        draw();
      } catch (err) {
        faultsOf(problem, err);
      }
    });
    fill(editor, form);
    shortcut.focus();
  };
  fill(pane, h("div", { class: "card" },
    h("h2", {}, t("canned")),
    h("p", { class: "muted small" }, t("cannedHelp")),
    h("div", { class: "scroll" }, h("table", { id: "canned" },
      h("thead", {}, h("tr", {}, h("th", {}, t("shortcut")), h("th", {}, t("title")), h("th", {}, t("body")),
        h("th", {}, t("languageCol")), h("th", {}, t("team")), h("th", {}))), list)),
    h("button", { type: "button", class: "primary", onclick: () => edit(null) }, t("newAnswer")),
    editor));
  draw();
}

function faultsOf(el, e) {
  fill(el, h("p", { class: "error", role: "alert" }, e.message));
}
