// A working day in the pages, in Debian's Chromium driven by Playwright: the admin
// creates an agent in the console and watches the live queue; a visitor chats from the
// demo page; the agent logs in to the desktop, accepts the offer with one key, replies,
// sees the customer's history and completes; an email arrives (sent by swaks, a real
// SMTP client) and the agent replies from the desktop, the reply reaching a mail relay;
// the admin saves a rule set with an error (shown in place), fixes it, simulates,
// applies it and finds the version in the audit trail; a customer's mail kept aside is
// made a contact from the console; the agent finds a finished conversation by a word of
// its Chinese text, and so does the console; the agent works three chats and two mails
// at once from the work list, names a colleague in a note and hands a chat to the
// billing team, whose agent is offered it with the note. Screenshots of each page go to
// tests/browser/screenshots/.
//
// Run by .ci/run after the Rust tests; by hand: `cargo build && cd tests/browser &&
// npm ci && npm test` (SWITCHBOARD_BIN picks another binary, CHROMIUM another browser).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { createHmac } from "node:crypto";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const shots = join(here, "screenshots");
mkdirSync(shots, { recursive: true });
const ADMIN = "console-admin-token-for-the-browser-test";
const PHONE_SECRET = "phone-system-secret-for-the-browser-test";

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** A mail relay on loopback that takes every message, for the agent's replies. */
async function mailRelay() {
  const port = await freePort();
  const messages = [];
  const server = createServer((sock) => {
    let buf = "", data = false, message = "";
    sock.write("220 relay ready\r\n");
    sock.on("data", (chunk) => {
      buf += chunk.toString("utf8");
      let i;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (data) {
          if (line === ".") { data = false; messages.push(message); message = ""; sock.write("250 2.0.0 kept\r\n"); }
          else message += line.replace(/^\.\./, ".") + "\n";
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO" || verb === "HELO") sock.write("250-relay\r\n250 8BITMIME\r\n");
        else if (verb === "DATA") { data = true; sock.write("354 go on\r\n"); }
        else if (verb === "QUIT") { sock.end("221 bye\r\n"); }
        else sock.write("250 ok\r\n");
      }
    });
    sock.on("error", () => {});
  });
  await new Promise((r) => server.listen(port, "127.0.0.1", r));
  return { port, messages, close: () => server.close() };
}

async function until(what, f, ms = 20000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const relay = await mailRelay();
const httpPort = await freePort();
const smtpPort = await freePort();
const base = `http://127.0.0.1:${httpPort}`;
const dataDir = mkdtempSync(join(tmpdir(), "sb-browser-"));
// The shipped rules, with a short wrap-up so the day moves on quickly, and agents let
// take waiting mail themselves from their team's queue (offers go on as before).
const rulesFile = join(dataDir, "routing.toml");
writeFileSync(rulesFile, readFileSync(join(root, "config", "routing.toml"), "utf8").replace(/^wrap_up_secs = \d+/m, "wrap_up_secs = 3")
  + '\n[pull]\nchannels = ["email"]\n');
const bin = process.env.SWITCHBOARD_BIN || join(root, "target", "debug", "switchboard");
const server = spawn(bin, [], {
  env: {
    ...process.env,
    SWITCHBOARD__SERVER__HTTP_ADDR: `127.0.0.1:${httpPort}`,
    SWITCHBOARD__STORAGE__DATA_DIR: dataDir,
    SWITCHBOARD__API__ADMIN_TOKEN: ADMIN,
    SWITCHBOARD__EMAIL__SMTP_ADDR: `127.0.0.1:${smtpPort}`,
    SWITCHBOARD__EMAIL__RELAY_URL: `smtp://127.0.0.1:${relay.port}`,
    SWITCHBOARD__ROUTING__RULES_FILE: rulesFile,
    SWITCHBOARD__PHONE__SECRET: PHONE_SECRET,
    SWITCHBOARD__PHONE__ANSWER_WINDOW_MS: "0",
  },
  stdio: ["ignore", "inherit", "inherit"],
});
await until("the server answers", async () => {
  try { return (await fetch(`${base}/readyz`)).ok; } catch (_) { return false; }
});

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
after(async () => {
  await browser.close();
  server.kill("SIGTERM");
  relay.close();
});

async function page(name, opts) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "en-US", ...opts });
  const p = await context.newPage();
  p.on("pageerror", (e) => { throw new Error(`${name}: ${e.message}`); });
  return p;
}

/** A call event, signed as the phone system signs it (docs/phone.md). */
async function callEvent(event) {
  const body = JSON.stringify(event);
  const ts = Math.floor(Date.now() / 1000);
  const sig = createHmac("sha256", PHONE_SECRET).update(`${ts}.${body}`).digest("hex");
  const r = await fetch(`${base}/channels/phone/events`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Switchboard-Timestamp": String(ts), "X-Switchboard-Signature": `v1=${sig}` },
    body,
  });
  assert.equal(r.status, 200, await r.text());
}

const shot = (p, name) => p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

test("a working day in the desktop and the console", async (t) => {
  const admin = await page("console");
  let agentToken;

  await t.test("the admin logs in to the console and creates an agent", async () => {
    await admin.goto(`${base}/console`);
    await admin.fill("#token", ADMIN);
    await admin.press("#token", "Enter");
    await admin.waitForSelector("#agent-states");
    await admin.keyboard.press("Alt+3");
    const form = admin.locator("#pane-agents form").first();
    await form.locator("[name=name]").fill("Wang Fang");
    await form.locator("[name=extension]").fill("201");
    await form.locator("[name=level]").fill("3");
    await form.locator("[name=skills]").fill("billing, complaints");
    await form.locator("button[type=submit]").click();
    const shown = await admin.locator("#agent-token").textContent({ timeout: 10000 });
    await until("the new token is shown", async () => /[0-9a-f]{64}/.test(await admin.locator("#agent-token").textContent()));
    agentToken = /([0-9a-f]{64})/.exec(await admin.locator("#agent-token").textContent())[1];
    assert.ok(shown !== null);
    await admin.locator("#agents-table").getByText("Wang Fang").waitFor();
    await shot(admin, "console-agents");
    await admin.keyboard.press("Alt+1");
  });

  const visitor = await page("visitor");
  await t.test("a visitor chats from the demo page; the console shows the wait live", async () => {
    await visitor.goto(`${base}/chat/demo`);
    await visitor.click("#sb-toggle");
    // Nobody is asked to answer before the visitor writes, and the widget says so.
    await visitor.getByText("Write your question: an agent joins you once you have.").waitFor();
    await visitor.fill("#sb-text", "Hello, my parcel has not arrived.");
    await visitor.press("#sb-text", "Enter");
    await visitor.getByText("Hello, my parcel has not arrived.").waitFor();
    // No agent is available yet: the console, without a reload, lists the chat waiting.
    await admin.locator("#waiting-list").getByText("Chats").waitFor({ timeout: 10000 });
    assert.equal(await admin.locator("#waiting-count").textContent(), "1");
    await shot(admin, "console-live");
    await shot(visitor, "chat-demo");
  });

  const desk = await page("desktop");
  await t.test("the agent logs in, sets available and accepts the offer with one key", async () => {
    await desk.goto(`${base}/desktop`);
    await desk.fill("#token", agentToken);
    await desk.press("#token", "Enter");
    await desk.waitForSelector("#presence");
    assert.match(await desk.locator("#me").textContent(), /Wang Fang/);
    await desk.selectOption("#presence", "available");
    await desk.click("#set-presence");
    const offer = desk.locator("#offer");
    await offer.getByRole("button", { name: "Accept (A)" }).waitFor();
    assert.match(await offer.textContent(), /Chats/);
    assert.match(await offer.textContent(), /low/);
    // Offered once the visitor wrote, with what they wrote.
    assert.match(await offer.textContent(), /Hello, my parcel has not arrived\./);
    assert.match(await desk.locator(".countdown").textContent(), /^\d+$/);
    await shot(desk, "desktop-offer");
    await desk.keyboard.press("a");
    await desk.locator(".workspace .messages").getByText("Hello, my parcel has not arrived.").waitFor();
    assert.match(await desk.locator("#capacity").textContent(), /Chats 1\/3/);
    await until("the console shows nobody waiting", async () => (await admin.locator("#waiting-count").textContent()) === "0");
  });

  await t.test("the agent replies, sees the visitor typing and the customer's history", async () => {
    const composer = desk.locator(".workspace textarea[name=reply]");
    await composer.fill("Sorry about that! Let me check where it is.");
    await composer.press("Enter");
    await visitor.getByText("Sorry about that! Let me check where it is.").waitFor();
    // The visitor types at a person's pace; the agent sees it while they type.
    const typed = visitor.locator("#sb-text").pressSequentially("Thank you", { delay: 300 });
    await desk.locator(".workspace .typing").getByText("The visitor is typing").waitFor();
    await typed;
    await visitor.press("#sb-text", "Enter");
    await desk.locator(".workspace .messages").getByText("Thank you").waitFor();
    const timeline = desk.locator(".workspace .timeline");
    await timeline.getByText("assigned").first().waitFor();
    assert.ok(await timeline.locator("li").count() >= 3, "the history lists the chat's steps");
    assert.match(await desk.locator(".workspace aside").textContent(), /Why:/);
    await shot(desk, "desktop-chat");
  });

  await t.test("the desktop reloads mid-chat and resumes: nothing missed, nothing twice", async () => {
    const reloaded = desk.reload();
    // The visitor writes while the agent's page is away.
    await visitor.fill("#sb-text", "Are you still there?");
    await visitor.press("#sb-text", "Enter");
    await reloaded;
    const messages = desk.locator(".workspace .messages");
    await messages.getByText("Are you still there?").waitFor();
    await messages.getByText("Sorry about that! Let me check where it is.").waitFor();
    assert.equal(await messages.getByText("Are you still there?").count(), 1);
    assert.equal(await messages.getByText("Hello, my parcel has not arrived.").count(), 1);
    assert.equal(await desk.locator(".workspace").count(), 1);
    assert.match(await desk.locator("#link").textContent(), /Connected/);
  });

  await t.test("the desktop's link drops and comes back: what was missed is replayed once", async () => {
    // The network goes: the socket breaks and reconnecting fails until it is back.
    await desk.context().setOffline(true);
    await desk.evaluate(() => desk.ws.close(4999, "network lost"));
    await desk.locator("#link").getByText("reconnecting").waitFor();
    await visitor.fill("#sb-text", "Hello again?");
    await visitor.press("#sb-text", "Enter");
    await desk.context().setOffline(false);
    await desk.locator("#link").getByText("Connected").waitFor({ timeout: 20000 });
    const messages = desk.locator(".workspace .messages");
    await messages.getByText("Hello again?").waitFor();
    assert.equal(await messages.getByText("Hello again?").count(), 1);
  });

  await t.test("the agent completes with a disposition; the wrap-up timer shows; the visitor is told", async () => {
    await desk.locator(".workspace select[name=disposition]").selectOption("resolved");
    await desk.locator(".workspace input[name=notes]").fill("Parcel re-sent");
    await desk.locator(".workspace button[name=complete]").click();
    await desk.locator(".workspace").waitFor({ state: "detached" });
    await desk.locator("#wrapup").getByText("Wrap-up").waitFor();
    // The visitor's page says the chat has ended, once.
    await visitor.getByText("The chat has ended.").waitFor();
    assert.equal(await visitor.getByText("The chat has ended.").count(), 1);
  });

  await t.test("an email arrives over SMTP; the agent replies from the desktop", async () => {
    const attachment = join(dataDir, "invoice-42.txt");
    writeFileSync(attachment, "Invoice 42: 2 x 19.90 EUR\n");
    execFileSync("swaks", ["--silent", "2", "--server", `127.0.0.1:${smtpPort}`,
      "--from", "mei.chen@example.com", "--to", "support@example.com",
      "--header", "Subject: Charged twice for invoice 42",
      "--header", "From: Mei Chen <mei.chen@example.com>",
      "--body", "Hello,\n\nI was charged twice for invoice 42. Could you refund one?\n\nMei",
      "--attach", `@${attachment}`]);
    const offer = desk.locator("#offer");
    await offer.getByText("Charged twice for invoice 42").waitFor({ timeout: 20000 });
    await desk.keyboard.press("a");
    const ws = desk.locator(".workspace");
    await ws.getByText("I was charged twice for invoice 42").waitFor();
    await ws.getByText("invoice-42.txt").waitFor();
    await ws.locator("aside").getByText("mei.chen@example.com").waitFor();
    // The shipped policy gives mail a first answer within 240 open minutes: shown due.
    await ws.locator('.due [data-target="first_response"]').getByText(/First response due/).waitFor();
    await ws.locator("textarea[name=reply]").fill("Dear Mei,\n\nWe have refunded the second charge.\n\nWang Fang");
    await ws.getByRole("button", { name: "Send" }).click();
    await ws.getByText("sent", { exact: true }).waitFor({ timeout: 20000 });
    const mail = await until("the reply reaches the relay", () => relay.messages.find((m) => m.includes("We have refunded the second charge.")));
    assert.match(mail, /^To: .*mei\.chen@example\.com/mi);
    assert.match(mail, /^In-Reply-To: /mi);
    await shot(desk, "desktop-email");
    await ws.locator("button[name=complete]").click();
    await ws.waitFor({ state: "detached" });
  });

  await t.test("a call rings; the agent takes it, sees it connected, takes notes, and it ends", async () => {
    await callEvent({ event: "ringing", call_id: "call-7", from: "+4930123456", to: "+4930999000" });
    const offer = desk.locator("#offer");
    await offer.getByText("Calls").waitFor({ timeout: 20000 });
    await desk.keyboard.press("a");
    const ws = desk.locator(".workspace");
    await ws.getByText("+4930123456", { exact: true }).waitFor();
    await ws.locator(".call-state").getByText("Ringing").waitFor();
    await callEvent({ event: "answered", call_id: "call-7", extension: "201" });
    await ws.locator(".call-state").getByText("Connected").waitFor();
    await ws.locator("textarea[name=call-notes]").fill("Wants the invoice resent to the new address.");
    await shot(desk, "desktop-call");
    await callEvent({ event: "ended", call_id: "call-7", cause: "normal_clearing", duration_secs: 64 });
    await ws.locator(".call-state").getByText("Ended").waitFor();
    await ws.locator("select[name=disposition]").selectOption("follow_up");
    await ws.locator("button[name=complete]").click();
    await ws.waitFor({ state: "detached" });
    // The notes taken during the call are the completion's, in the history.
    const i = await (await fetch(`${base}/api/interactions?channel=phone&key=native%3Acall-7`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
    const full = await (await fetch(`${base}/api/interactions/${i.id}`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
    assert.equal(full.disposition, "follow_up");
    assert.equal(full.notes, "Wants the invoice resent to the new address.");
  });

  await t.test("the admin saves rules with an error, sees it in place, fixes, simulates and applies", async () => {
    await admin.keyboard.press("Alt+2");
    const editor = admin.locator("#rules-editor");
    await until("the active rules load", async () => (await editor.inputValue()).includes("[tiers.high]"));
    const good = await editor.inputValue();
    const broken = good.replace(/(\[tiers\.high\][^[]*?target_secs = )20/, "$10");
    assert.notEqual(broken, good);
    await editor.fill(broken);
    await admin.click("#apply");
    const errors = admin.locator("#rules-errors");
    await errors.getByText("tiers.high.target_secs").waitFor();
    // In place: the error names its line, and the editor's gutter marks that line.
    const line = broken.split("\n").findIndex((l, i, all) => l.startsWith("target_secs = 0") && all.slice(0, i).reverse().find((x) => x.startsWith("[")) === "[tiers.high]") + 1;
    assert.ok(line > 0);
    await admin.locator(`.gutter .bad[data-line="${line}"]`).waitFor();
    await errors.getByRole("button", { name: `Line ${line}` }).waitFor();
    await shot(admin, "console-rules-error");
    // A misspelled key, and a value of the wrong type, are marked at their lines too.
    for (const [from, to] of [["misses_before_away = 3", "misses_before_awya = 3"], ["\ntimeout_secs = 20\n", '\ntimeout_secs = "twenty"\n']]) {
      const wrong = good.replace(from, to);
      assert.notEqual(wrong, good);
      await editor.fill(wrong);
      await admin.click("#validate");
      const at = wrong.split("\n").findIndex((l) => l === to.trim()) + 1;
      assert.ok(at > 0);
      await admin.locator(`.gutter .bad[data-line="${at}"]`).waitFor();
    }
    const fixed = good.replace(/(\[tiers\.high\][^[]*?target_secs = )20/, "$125");
    await editor.fill(fixed);
    await admin.click("#validate");
    await admin.locator("#rules-problems").getByText("The rules are valid.").waitFor();
    await admin.locator("#rules-diff .add").getByText("target_secs = 25").waitFor();
    await admin.selectOption("#sim-hours", "1");
    await admin.click("#simulate");
    const table = admin.locator("#simulation-table");
    await table.waitFor({ timeout: 30000 });
    assert.match(await table.textContent(), /This draft/);
    assert.match(await table.textContent(), /Recorded/);
    // First come, first served beside them, replayed over the same window, in the table
    // and the chart's legend, with the agent time each left idle while contacts waited.
    const fifoRows = table.locator("tbody tr").filter({ hasText: "First come, first served" });
    assert.ok(await fifoRows.count() >= 2, "a FIFO row per tier and overall");
    await admin.locator("#simulation .legend").getByText("First come, first served").waitFor();
    assert.match(await admin.locator("#simulation-idle").textContent(), /First come, first served 0\.0 agent-min/);
    await admin.fill("#rules-comment", "high tier: 25 s");
    await admin.click("#apply");
    await admin.locator("#rules-applied").getByText("Applied as version 2.").waitFor();
    await shot(admin, "console-rules");
    const active = await (await fetch(`${base}/api/routing/rules`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
    assert.equal(active.version, 2);
    assert.match(active.document, /target_secs = 25/);
  });

  await t.test("the admin finds the new version in the audit trail, filtered", async () => {
    await admin.keyboard.press("Alt+5");
    await admin.fill("#audit-filter [name=action]", "rules.apply");
    await admin.locator("#audit-filter button[type=submit]").click();
    const table = admin.locator("#audit-table");
    await until("the audit shows only rules.apply", async () => {
      const rows = await table.locator("tbody tr").allTextContents();
      // Newest first: the version just applied by the admin, then the file's first.
      return rows.length === 2 && rows.every((r) => r.includes("rules.apply")) &&
        rows[0].includes("high tier: 25 s") && rows[0].includes("rules 2") && rows[1].includes("rules 1");
    });
    // Beside the trail, the retention: every channel keeps its content (the default).
    const retention = admin.locator("#retention-table tbody tr");
    await until("the retention card lists every channel", async () => (await retention.count()) === 4);
    for (const row of await retention.allTextContents()) assert.match(row, /forever/);
    await shot(admin, "console-audit");
  });

  await t.test("the customer is found by name and by email; the console switches to Chinese", async () => {
    await admin.keyboard.press("Alt+4");
    await admin.fill("#customer-value", "mei");
    await admin.press("#customer-value", "Enter");
    await admin.locator("#customer h3").getByText("Mei Chen").waitFor();
    await admin.fill("#customer-value", "mei.chen@example.com");
    assert.equal(await admin.locator("#customer-kind").inputValue(), "email");
    await admin.press("#customer-value", "Enter");
    await admin.locator("#customer").getByText("Mei Chen").waitFor();
    await admin.locator("#customer select[name=tier]").selectOption("high");
    await admin.locator("#customer").getByRole("button", { name: "Save" }).click();
    await admin.locator("#customer .pill.tier-high").waitFor();
    await shot(admin, "console-customers");
    // A customer made by hand, then found by the phone number given.
    const made = admin.locator("#new-customer");
    await made.locator("input[name=new-name]").fill("Jonas Berg");
    await made.locator("input[name=new-phone]").fill("+46 70 123 45 67");
    await made.getByRole("button", { name: "Create" }).click();
    await admin.locator("#customer").getByText("Jonas Berg").waitFor();
    assert.equal(await made.locator("input[name=new-name]").inputValue(), "", "the form is ready for the next one");
    await admin.fill("#customer-value", "+46701234567");
    await admin.press("#customer-value", "Enter");
    await admin.locator("#customer").getByText("Jonas Berg").waitFor();
    // An import with a bad row is refused whole, the row's error shown.
    const csv = join(dataDir, "customers.csv");
    writeFileSync(csv, "email,name,tier\nana@example.com,Ana Lima,high\nnot-an-address,Bo,low\n");
    await admin.setInputFiles("#import-file", csv);
    await admin.locator("#pane-customers").getByRole("button", { name: "Import CSV" }).click();
    const errors = admin.locator("#import-errors");
    await errors.waitFor();
    assert.match(await errors.locator("tbody tr").first().textContent(), /^2email/);
    writeFileSync(csv, "email,name,tier\nana@example.com,Ana Lima,high\nbo@example.com,Bo,low\n");
    await admin.setInputFiles("#import-file", csv);
    await admin.locator("#pane-customers").getByRole("button", { name: "Import CSV" }).click();
    await admin.locator("#import-result").getByText("Imported 2 rows: 2 created, 0 updated.").waitFor();
    assert.equal(await admin.locator("#import-progress").evaluate((p) => p.value), 1);
    await admin.selectOption("#lang", "zh");
    await admin.locator("#tabs").getByText("实时队列").waitFor();
    await admin.keyboard.press("Alt+1");
    await admin.locator("#pane-live").getByText("坐席状态").waitFor();
    await shot(admin, "console-live-zh");
  });

  await t.test("a supervisor sets the agent away with a reason; the desktop shows it", async () => {
    // The console is in Chinese now; the row is found by the agent's name.
    const row = admin.locator("#agent-states tbody tr", { hasText: "Wang Fang" });
    await row.getByRole("button").click();
    await row.locator("input").fill("team meeting");
    await row.locator("input").press("Enter");
    await until("the desktop shows the agent away", async () => (await desk.locator("#presence").inputValue()) === "away");
    await row.getByText("离开").waitFor();
  });

  await t.test("a customer's mail kept aside as bulk mail is made a contact from the console", async () => {
    // Sent through a mailing tool that marks it bulk: kept aside, never routed.
    execFileSync("swaks", ["--silent", "2", "--server", `127.0.0.1:${smtpPort}`,
      "--from", "lena.berg@example.com", "--to", "support@example.com",
      "--header", "Subject: Refund for order 5521", "--header", "Precedence: bulk",
      "--body", "Please refund order 5521, it never arrived."]);
    // The console is in Chinese now.
    await admin.keyboard.press("Alt+6");
    await admin.locator("#tabs").getByText("搁置的邮件").waitFor();
    const row = admin.locator("#kept-aside tbody tr", { hasText: "Refund for order 5521" });
    await row.waitFor();
    await row.getByText("自动回复").waitFor();
    await row.getByText("lena.berg@example.com").waitFor();
    await shot(admin, "console-kept-aside-zh");
    await row.getByRole("button", { name: "转为联系" }).click();
    await admin.locator("#kept-aside tbody tr", { hasText: "Refund for order 5521" }).getByText("已转为联系").waitFor();
    const headers = { Authorization: `Bearer ${ADMIN}` };
    const kept = await (await fetch(`${base}/api/email/kept-aside`, { headers })).json();
    const made = kept.messages.find((m) => m.subject === "Refund for order 5521").contact;
    const i = await (await fetch(`${base}/api/interactions/${made.interaction_id}`, { headers })).json();
    assert.equal(i.channel, "email");
    assert.equal(i.body, "Please refund order 5521, it never arrived.");
    assert.equal(i.state, "queued", "the agent is away: it waits to be routed");
  });

  await t.test("a supervisor adds a calendar from the console; a wrong one is refused with each fault", async () => {
    // The console is in Chinese.
    await admin.keyboard.press("Alt+7");
    const pane = admin.locator("#pane-service");
    await pane.locator("#calendars").getByText("Europe/Berlin").waitFor();
    await pane.getByRole("button", { name: "新建日历" }).click();
    const editor = pane.locator("#calendar-editor form");
    await editor.locator("input[name=calendar-name]").fill("shanghai");
    await editor.locator("input[name=time_zone]").fill("Asia/Shanghai");
    await editor.locator("input[name=monday]").fill("09:00-12:00, 13:00-18:00");
    await editor.locator("input[name=tuesday]").fill("18:00-09:00");
    await editor.locator("input[name=holidays]").fill("10-01");
    await editor.getByRole("button", { name: "保存" }).click();
    await editor.getByText(/calendars\.shanghai\.tuesday\[0\]/).waitFor();
    await shot(admin, "console-calendar-refused-zh");
    await editor.locator("input[name=tuesday]").fill("09:00-18:00");
    await editor.getByRole("button", { name: "保存" }).click();
    const row = pane.locator('#calendars tr[data-calendar="shanghai"]');
    await row.getByText("Asia/Shanghai").waitFor();
    await row.getByText("星期一 09:00-12:00, 13:00-18:00").waitFor();
    const headers = { Authorization: `Bearer ${ADMIN}` };
    const service = await (await fetch(`${base}/api/service`, { headers })).json();
    assert.deepEqual(service.calendars.shanghai.monday, ["09:00-12:00", "13:00-18:00"]);
    assert.deepEqual(service.calendars.shanghai.holidays, ["10-01"]);
    await pane.locator("#policies").waitFor();
    await shot(admin, "console-service-zh");
  });

  await t.test("an offer arriving while the agent types takes no keystroke; notes and the work list", async () => {
    const headers = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    const contact = (key, subject) => fetch(`${base}/api/interactions`, {
      method: "POST", headers,
      body: JSON.stringify({ idempotency_key: key, customer: { email: `${key}@example.com` }, subject }),
    });
    await desk.selectOption("#presence", "available");
    await desk.locator("#set-presence").click();
    // Back at work: the mail made a contact from the console comes first.
    const offer = desk.locator("#offer");
    await offer.getByText("Refund for order 5521").waitFor({ timeout: 20000 });
    await desk.keyboard.press("a");
    await desk.locator(".workspace", { hasText: "Refund for order 5521" }).waitFor();
    await contact("typing-1", "Address change");
    await offer.getByText("Address change").waitFor({ timeout: 20000 });
    await desk.keyboard.press("a");
    const ws = desk.locator(".workspace", { hasText: "Address change" });
    await ws.waitFor();
    await desk.locator("#work-open").getByText("Address change").waitFor();
    // The agent writes a note full of a's and d's; a second contact is offered mid-sentence.
    await ws.locator("summary").click();
    const note = ws.locator("textarea[name=note]");
    await note.click();
    const sentence = "a damaged parcel and a delayed refund: added, as agreed";
    const typing = note.pressSequentially(sentence, { delay: 40 });
    await new Promise((r) => setTimeout(r, 600));
    await contact("typing-2", "Second contact");
    await typing;
    await offer.getByText("Second contact").waitFor();
    assert.equal(await note.inputValue(), sentence, "every keystroke reached the note");
    const byKey = async (key) => (await (await fetch(`${base}/api/interactions?channel=api&key=${key}`, { headers })).json());
    assert.equal((await byKey("typing-2")).state, "offered", "the keystrokes accepted and declined nothing");
    // The note is kept, shown to agents only.
    await note.press("Control+Enter");
    await ws.locator(".notes li", { hasText: sentence }).waitFor();
    const held = await byKey("typing-1");
    const detail = await (await fetch(`${base}/api/interactions/${held.id}`, { headers })).json();
    assert.ok(detail.history.some((e) => e.kind === "note" && e.data.text === sentence));
    // The shortcut sheet, then the offer taken with the mouse.
    await desk.locator("body").click({ position: { x: 5, y: 5 } });
    await desk.keyboard.press("?");
    await desk.locator("#shortcuts").waitFor();
    await shot(desk, "desktop-shortcuts");
    await desk.keyboard.press("Escape");
    await desk.locator("#accept").click();
    await desk.locator("#work-open").getByText("Second contact").waitFor();
    await shot(desk, "desktop-work-list");
    // A shared canned answer in Chinese, made in the console, inserted in the reply.
    await admin.keyboard.press("Alt+8");
    const cannedPane = admin.locator("#pane-canned");
    await cannedPane.getByRole("button", { name: "新建回复" }).click();
    const form = cannedPane.locator("#canned-editor");
    await form.locator("input[name=shortcut]").fill("退款");
    await form.locator("input[name=title]").fill("退款已处理");
    await form.locator("textarea[name=body]").fill("您好，您的退款已处理，编号 {interaction_number}。——{agent_name}");
    await form.locator("input[name=language]").fill("zh-CN");
    await form.getByRole("button", { name: "保存" }).click();
    await cannedPane.locator('#canned tr[data-canned="退款"]').waitFor();
    await shot(admin, "console-canned-zh");
    const refund = desk.locator(".workspace", { hasText: "Refund for order 5521" });
    const reply = refund.locator("textarea[name=reply]");
    await reply.click();
    await reply.pressSequentially("/退", { delay: 30 });
    await refund.locator(".canned-menu").getByText("退款已处理").waitFor();
    await reply.press("Tab");
    const written = await reply.inputValue();
    assert.match(written, /^您好，您的退款已处理，编号 [0-9A-F-]{8}。——Wang Fang$/, written);
    // The accountant in copy, a file attached; the customer's words quoted below.
    await refund.locator("input[name=mail-cc]").fill("accounts@example.com");
    const receipt = join(dataDir, "receipt-5521.txt");
    writeFileSync(receipt, "Refund 5521: 49.90 EUR\n");
    await refund.locator("input[name=mail-files]").setInputFiles(receipt);
    await refund.locator(".pill.file", { hasText: "receipt-5521.txt" }).waitFor();
    await refund.getByRole("button", { name: "Send" }).click();
    await refund.getByText("sent", { exact: true }).waitFor({ timeout: 20000 });
    const sentMail = await until("the reply with its file reaches the relay", () => relay.messages.find((m) => m.includes("receipt-5521.txt")));
    assert.match(sentMail, /^Cc: accounts@example\.com/mi);
    assert.match(sentMail, /> Please refund order 5521, it never arrived\./);
    for (const subject of ["Refund for order 5521", "Address change", "Second contact"]) {
      const w = desk.locator(".workspace", { hasText: subject });
      await w.locator("button[name=complete]").click();
      await w.waitFor({ state: "detached" });
    }
    await desk.locator("#work-recent").getByText("Second contact").waitFor();

    // A visitor on a Chinese page: the widget speaks Chinese, and the visitor ends the
    // chat themselves.
    await visitor.goto(`${base}/chat/demo/zh`);
    await visitor.evaluate(() => localStorage.clear());
    await visitor.reload();
    await visitor.getByRole("button", { name: "在线咨询" }).click();
    await visitor.getByText("请写下您的问题，客服人员会接着回复您。").waitFor();
    await visitor.locator("#sb-text").fill("请问可以开发票吗？");
    await visitor.getByRole("button", { name: "发送" }).click();
    await offer.getByText("Chats").waitFor({ timeout: 20000 });
    await visitor.getByRole("button", { name: "结束对话" }).click();
    await visitor.getByText("对话已结束。").waitFor();
    await offer.getByText("Chats").waitFor({ state: "detached" });
    // The transcript, by mail, to the address the visitor gives.
    await visitor.getByLabel("您的邮箱").fill("li.lei@example.com");
    await visitor.getByRole("button", { name: "把聊天记录发到我的邮箱" }).click();
    await visitor.getByText("聊天记录已发送到您的邮箱。").waitFor();
    const transcript = await until("the transcript reaches the relay", () => relay.messages.find((m) => /^To: .*li\.lei@example\.com/mi.test(m)));
    assert.match(transcript, /^Auto-Submitted: auto-replied/mi);
    await shot(visitor, "widget-zh");

    // The week's reports, in Chinese: the figures by tier, and a bar opened to the
    // contacts behind it.
    await admin.locator('#tabs button[data-tab="reports"]').click();
    const reportsPane = admin.locator("#pane-reports");
    await reportsPane.getByRole("button", { name: "显示" }).click();
    await reportsPane.locator("#report-rows th", { hasText: "平均应答速度" }).waitFor();
    await reportsPane.locator("#report-rows tbody tr").first().waitFor();
    await reportsPane.locator('#report-chart rect.bar:not([height="0"])').first().click();
    await reportsPane.locator("#report-contacts tbody tr").first().waitFor();
    await shot(admin, "console-reports-zh");
    // By agent, in Shanghai's days: the time available and away, and the occupancy.
    await reportsPane.locator("#report-slice").selectOption("agent");
    await reportsPane.locator("#report-tz").fill("Asia/Shanghai");
    await reportsPane.getByRole("button", { name: "显示" }).click();
    await reportsPane.locator("#report-rows th", { hasText: "占用率" }).waitFor();
    await reportsPane.getByText("时间段按 Asia/Shanghai 划分").waitFor();
    assert.ok(await reportsPane.locator("#report-rows th", { hasText: "服务承诺达成率" }).count());
    await reportsPane.locator("#report-figure").selectOption("occupancy");
    await reportsPane.locator("#report-chart svg").waitFor();
    await shot(admin, "console-reports-agents-zh");
    // A zone off the whole hour is refused, and says why.
    await reportsPane.locator("#report-tz").fill("Asia/Kolkata");
    await reportsPane.getByRole("button", { name: "显示" }).click();
    await reportsPane.getByRole("alert").filter({ hasText: "Asia/Kolkata" }).waitFor();
    await reportsPane.locator("#report-tz").fill("");
  });

  await t.test("the agent finds a finished conversation by a word of its Chinese text; so does the console", async () => {
    const headers = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    await fetch(`${base}/api/interactions`, {
      method: "POST", headers,
      body: JSON.stringify({ idempotency_key: "zh-parcel", customer: { email: "li.na@example.cn", name: "李娜" },
        subject: "包裹查询", body: "您好，我的包裹还没有到，能帮我查一下物流吗？" }),
    });
    await desk.locator("#offer").getByText("包裹查询").waitFor({ timeout: 20000 });
    await desk.locator("#accept").click();
    const w = desk.locator(".workspace", { hasText: "包裹查询" });
    await w.locator("button[name=complete]").click();
    await w.waitFor({ state: "detached" });
    // `/` goes to the search box; a two-character word finds the conversation.
    await desk.locator("body").click({ position: { x: 5, y: 5 } });
    await desk.keyboard.press("/");
    assert.equal(await desk.evaluate(() => document.activeElement.name), "q");
    await desk.keyboard.type("物流");
    await desk.keyboard.press("Enter");
    const found = desk.locator("#search-results li", { hasText: "李娜" });
    await found.waitFor();
    assert.match(await found.textContent(), /查一下物流/);
    await shot(desk, "desktop-search");
    await found.locator("button").click();
    await desk.locator(".workspace", { hasText: "包裹查询" }).waitFor();
    // A supervisor finds it in the console by a longer word, and opens the customer.
    await admin.keyboard.press("Alt+4");
    const search = admin.locator("#conversation-search");
    await search.locator("input[name=q]").fill("包裹还没有");
    await search.locator("input[name=q]").press("Enter");
    await search.locator("#search-results li", { hasText: "李娜" }).locator("button").click();
    await admin.locator("#customer h3").getByText("李娜").waitFor();
    await shot(admin, "console-search-zh");
  });

  await t.test("the agent's morning: three chats and two mails at once from the work list, a colleague named in a note, a chat handed to billing", async () => {
    const headers = { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" };
    // A colleague on the billing team, at a desktop of their own, not yet taking work.
    const made = await fetch(`${base}/api/agents`, { method: "POST", headers, body: JSON.stringify({ name: "Zhao Lei", skills: ["billing"] }) });
    assert.equal(made.status, 201);
    const zhao = await page("colleague");
    await zhao.goto(`${base}/desktop`);
    await zhao.fill("#token", (await made.json()).token);
    await zhao.press("#token", "Enter");
    await zhao.waitForSelector("#presence");
    assert.match(await zhao.locator("#me").textContent(), /Zhao Lei/);

    // Three visitors write in; the agent takes each chat as it is offered.
    const chats = [];
    for (const text of ["Hi, my coupon code does not work.", "Can I change my delivery address?", "I was charged twice for order 8812."]) {
      const v = await page(`visitor ${chats.length + 1}`);
      await v.goto(`${base}/chat/demo`);
      await v.click("#sb-toggle");
      await v.fill("#sb-text", text);
      await v.press("#sb-text", "Enter");
      await v.getByText(text).waitFor();
      const key = await until("the chat starts", () => v.evaluate(() => (JSON.parse(localStorage.getItem("switchboard.chat")) || {}).chat_id));
      await desk.locator("#offer").getByText("Chats").waitFor({ timeout: 20000 });
      await desk.locator("#accept").click();
      const i = await (await fetch(`${base}/api/interactions?channel=chat&key=${encodeURIComponent(key)}`, { headers })).json();
      await desk.locator(`#ws-${i.id} .messages`).getByText(text).waitFor();
      chats.push({ page: v, text, id: i.id });
    }
    // Two mails arrive over SMTP; the agent takes both too.
    const mails = [];
    for (const [from, name, subject, body] of [
      ["sara.kim@example.com", "Sara Kim", "Order 7781: wrong size", "The shoes are one size too small. Can I swap them?"],
      ["omar.haddad@example.com", "Omar Haddad", "Order 7790: gift wrap", "Could you gift-wrap my order, please?"]]) {
      execFileSync("swaks", ["--silent", "2", "--server", `127.0.0.1:${smtpPort}`, "--from", from, "--to", "support@example.com",
        "--header", `Subject: ${subject}`, "--header", `From: ${name} <${from}>`, "--body", body]);
      await desk.locator("#offer").getByText(subject).waitFor({ timeout: 20000 });
      await desk.locator("#accept").click();
      const ws = desk.locator(".workspace", { hasText: body });
      await ws.waitFor();
      mails.push({ subject, from, id: (await ws.getAttribute("id")).slice(3) });
    }
    assert.match(await desk.locator("#capacity").textContent(), /Chats 3\/3/);
    const open = desk.locator("#work-open");
    await until("the work list holds all five", async () => (await open.locator("li").count()) === 5);

    // From the list to each conversation in turn, and a reply in each.
    const focusFromList = async (id) => {
      await open.locator(`li[data-interaction="${id}"] button`).click();
      await until("the conversation has the focus", () => desk.evaluate((id) => {
        const a = document.activeElement;
        return !!a && !!a.closest && a.closest(".workspace") !== null && a.closest(".workspace").id === `ws-${id}`;
      }, id));
      return desk.locator(`#ws-${id}`);
    };
    for (const [n, c] of chats.entries()) {
      const ws = await focusFromList(c.id);
      const answer = `Answer ${n + 1}: let me look at that for you.`;
      await ws.locator("textarea[name=reply]").fill(answer);
      await ws.locator("textarea[name=reply]").press("Enter");
      await c.page.getByText(answer).waitFor();
    }
    for (const m of mails) {
      const ws = await focusFromList(m.id);
      const reply = ws.locator("textarea[name=reply]");
      await reply.fill(`Dear customer,\n\nAbout ${m.subject}: done.\n\nWang Fang`);
      await ws.getByRole("button", { name: "Send" }).click();
      await ws.getByText("sent", { exact: true }).waitFor({ timeout: 20000 });
      await until(`the reply about ${m.subject} reaches the relay`, () => relay.messages.find((x) => x.includes(`About ${m.subject}: done.`)));
    }
    // A visitor writes in a chat the agent is not looking at: marked new in the list.
    await chats[0].page.fill("#sb-text", "It says the code has expired.");
    await chats[0].page.press("#sb-text", "Enter");
    const first = open.locator(`li[data-interaction="${chats[0].id}"]`);
    await first.getByText("new", { exact: true }).waitFor();
    await shot(desk, "desktop-morning");
    const ws1 = await focusFromList(chats[0].id);
    await ws1.locator(".messages").getByText("It says the code has expired.").waitFor();
    await until("the mark is gone once read", async () => (await first.getByText("new", { exact: true }).count()) === 0);

    // A note on the double charge names the colleague, who is told at their desk.
    const billing = await focusFromList(chats[2].id);
    await billing.locator("details.tools summary").click();
    const note = billing.locator("textarea[name=note]");
    await note.fill("@Zhao the visitor was charged twice for order 8812; the refund is yours.");
    await note.press("Control+Enter");
    await billing.locator(".notes li", { hasText: "charged twice for order 8812" }).waitFor();
    await zhao.locator(".toast", { hasText: "Wang Fang mentioned you" }).waitFor();

    // Handed to the billing team with a note: it leaves this desk, and the colleague,
    // once available, is offered it with the note, then reads the whole thread.
    await billing.locator("select[name=transfer-to]").selectOption("skill:billing");
    await billing.locator("input[name=transfer-note]").fill("Please refund the second charge.");
    await billing.getByRole("button", { name: "Transfer", exact: true }).click();
    await desk.locator(`#ws-${chats[2].id}`).waitFor({ state: "detached" });
    await zhao.selectOption("#presence", "available");
    await zhao.click("#set-presence");
    const offer = zhao.locator("#offer");
    await offer.getByText("Please refund the second charge.").waitFor({ timeout: 20000 });
    await offer.getByText("Handed on by Wang Fang").waitFor();
    await shot(zhao, "desktop-transfer-offer");
    await zhao.locator("#accept").click();
    const taken = zhao.locator(`#ws-${chats[2].id}`);
    await taken.locator(".messages").getByText("I was charged twice for order 8812.").waitFor();
    await taken.locator(".messages").getByText("Answer 3: let me look at that for you.").waitFor();
    await taken.locator(".notes li", { hasText: "charged twice for order 8812" }).waitFor();
    await taken.locator(".timeline").getByText("Please refund the second charge.").waitFor();
    await chats[2].page.getByText("Zhao joined the chat").waitFor();

    // The rest of the morning's work is completed.
    for (const id of [chats[0].id, chats[1].id, ...mails.map((m) => m.id)]) {
      const w = desk.locator(`#ws-${id}`);
      await w.locator("button[name=complete]").click();
      await w.waitFor({ state: "detached" });
    }
    await taken.locator("button[name=complete]").click();
    await taken.waitFor({ state: "detached" });

    // Away from offers, the agent takes a waiting mail from the team's queue.
    for (const d of [desk, zhao]) {
      await d.selectOption("#presence", "away");
      await d.click("#set-presence");
    }
    execFileSync("swaks", ["--silent", "2", "--server", `127.0.0.1:${smtpPort}`, "--from", "ines.alves@example.com", "--to", "support@example.com",
      "--header", "Subject: Order 7802: invoice address", "--header", "From: Ines Alves <ines.alves@example.com>",
      "--body", "Please put my company's name on the invoice."]);
    const waiting = desk.locator("#team-queue li", { hasText: "Order 7802: invoice address" });
    await waiting.waitFor({ timeout: 20000 });
    await zhao.locator("#team-queue li", { hasText: "Order 7802: invoice address" }).waitFor({ timeout: 20000 });
    await shot(desk, "desktop-team-queue");
    await waiting.getByRole("button", { name: "Take" }).click();
    const pulled = desk.locator(".workspace", { hasText: "Please put my company's name on the invoice." });
    await pulled.waitFor();
    await until("it leaves the team's queue", async () => (await desk.locator("#team-queue li", { hasText: "Order 7802" }).count()) === 0);
    await pulled.locator("button[name=complete]").click();
    await pulled.waitFor({ state: "detached" });
  });

  await t.test("a narrow window still shows the desktop", async () => {
    await desk.setViewportSize({ width: 420, height: 800 });
    await desk.locator("#presence").waitFor();
    const width = await desk.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 430, `no sideways scrolling (page is ${width}px wide)`);
    await shot(desk, "desktop-narrow");
  });
});
