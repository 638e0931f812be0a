// The console's retention card, on the Audit tab: how long each channel's content is
// kept, how far old content has been removed and what the last run removed (read-only:
// the periods are set in the configuration file). Through the public API only.
"use strict";

const retention = { body: null };

/** Builds the card; answers it for the caller to place. */
function buildRetention() {
  retention.body = h("tbody", {});
  return h("div", { class: "card", id: "retention" },
    h("h2", {}, t("retention")),
    h("p", { class: "muted small" }, t("retentionHelp")),
    h("div", { class: "scroll" }, h("table", { id: "retention-table" },
      h("thead", {}, h("tr", {}, h("th", {}, t("channel")), h("th", {}, t("kept")),
        h("th", {}, t("removedBefore")), h("th", {}, t("lastRun")), h("th", {}, t("lastRemoved")),
        h("th", {}, t("waitingForEnd")))),
      retention.body)));
}

/** Loads the retention's state into the card. */
async function loadRetention() {
  try {
    const r = await api("GET", "/api/retention");
    retention.body.replaceChildren();
    for (const c of r.channels) {
      retention.body.append(h("tr", {},
        h("td", {}, t(c.channel)),
        h("td", {}, c.days === 0 ? t("keptForever") : t("keptDays").replace("{d}", String(c.days))),
        h("td", {}, c.removed_before ? clock(c.removed_before) : "—"),
        h("td", {}, c.last_run_at ? clock(c.last_run_at) : "—"),
        h("td", {}, String(c.last_removed)),
        h("td", {}, String(c.deferred))));
    }
  } catch (e) {
    fill(retention.body, h("tr", {}, h("td", { colspan: 6, class: "error" }, e.message)));
  }
}
