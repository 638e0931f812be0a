// The console's "Mail kept aside" tab: mail that became no contact (an auto-reply or a
// bounce that answers no conversation, mail with no usable sender, unreadable mail),
// newest first with why, and a button that makes one a contact (once), asking for the
// customer's address when the message names none. Through the public API only.
"use strict";

const keptAside = { body: null, more: null };

/** Builds the tab's table in `pane`, once per language. */
function buildKeptAside(pane) {
  keptAside.body = h("tbody", {});
  keptAside.more = h("button", { type: "button", class: "hidden" }, t("more"));
  fill(pane, h("div", { class: "card" },
    h("h2", {}, t("keptAside")),
    h("p", { class: "muted small" }, t("keptAsideHelp")),
    h("div", { class: "scroll" }, h("table", { id: "kept-aside" },
      h("thead", {}, h("tr", {}, h("th", {}, t("when")), h("th", {}, t("reason")), h("th", {}, t("from")),
        h("th", {}, t("subject")), h("th", {}, t("text")), h("th", {}))),
      keptAside.body)),
    keptAside.more));
}

/** Loads a page of it (the first, or the one after `before`). */
async function loadKeptAside(before) {
  const q = new URLSearchParams({ limit: "50" });
  if (before) q.set("before", before);
  try {
    const r = await api("GET", `/api/email/kept-aside?${q}`);
    if (!before) keptAside.body.replaceChildren();
    if (!before && r.messages.length === 0) {
      keptAside.body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, t("noneKept"))));
    }
    for (const m of r.messages) keptAside.body.append(keptRow(m));
    keptAside.more.classList.toggle("hidden", !r.next_before);
    keptAside.more.onclick = () => loadKeptAside(r.next_before);
  } catch (e) {
    fill(keptAside.body, h("tr", {}, h("td", { colspan: 6, class: "error" }, e.message)));
  }
}

/** One message: when, why, who, what, and what can be done with it. */
function keptRow(m) {
  const row = h("tr", { dataset: { id: m.id } },
    h("td", {}, clock(m.received_at)),
    h("td", { title: m.detail }, t(`aside_${m.reason}`)),
    h("td", {}, m.from || "—"),
    h("td", {}, m.subject || "—"),
    h("td", { class: "small" }, (m.preview || "").slice(0, 160)),
    h("td", {}, keptAction(m)));
  return row;
}

function keptAction(m) {
  if (m.contact) return h("span", { class: "okay" }, t("contactMade"));
  const email = m.from ? null : h("input", { type: "email", name: "email", required: true, placeholder: t("customerEmail"), "aria-label": t("customerEmail") });
  const problem = h("span", { class: "error small", role: "alert" });
  const form = h("form", { class: "row" }, email, h("button", { type: "submit", class: "primary" }, t("makeContact")), problem);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = email ? { email: email.value.trim() } : {};
    try {
      const r = await api("POST", `/api/email/kept-aside/${m.id}/contact`, body);
      form.closest("tr").replaceWith(keptRow(r.kept_aside));
      toast(t("contactMade"));
    } catch (err) {
      fill(problem, err.message);
    }
  });
  return form;
}
