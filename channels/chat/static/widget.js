/* Switchboard web chat widget. Drop into any page:
 *   <script src="https://switchboard.example.com/chat/widget.js" async></script>
 * Optional attributes on the tag: data-title, data-customer-token (signed by your site),
 * data-topic, data-lang ("en" or "zh"; by default the page's language). No dependencies.
 * It keeps the chat across reloads (localStorage), resends what was not acknowledged,
 * and reconnects by itself. */
(function () {
  "use strict";
  var script = document.currentScript;
  var origin = new URL(script.src, location.href).origin;
  var wsUrl = origin.replace(/^http/, "ws") + "/channels/chat/ws";
  var zh = /^zh/i.test(script.getAttribute("data-lang") || document.documentElement.lang || navigator.language || "");
  var L = zh ? {
    title: "在线咨询", first: "请写下您的问题，客服人员会接着回复您。", send: "发送", message: "消息", end: "结束对话", ended: "对话已结束。",
    joined: function (n) { return n + " 已加入对话"; },
    line: function (p, m) { return m ? "您排在第 " + p + " 位（约 " + m + " 分钟）" : "您排在第 " + p + " 位"; },
    reconnecting: "正在重新连接…", opens: function (w) { return "我们将于 " + w + " 重新营业。"; },
    leave: "请留言：我们营业后会回复您。", thanks: "感谢您的评价。", comment: "意见",
    score: function (n) { return n + " 分（满分 5 分）"; },
    yourEmail: "您的邮箱", transcript: "把聊天记录发到我的邮箱", transcriptSent: "聊天记录已发送到您的邮箱。"
  } : {
    title: "Chat with us", first: "Write your question: an agent joins you once you have.", send: "Send", message: "Message", end: "End chat", ended: "The chat has ended.",
    joined: function (n) { return n + " joined the chat"; },
    line: function (p, m) { return m ? "You are number " + p + " in line (about " + m + " min)" : "You are number " + p + " in line"; },
    reconnecting: "Reconnecting…", opens: function (w) { return "We open again " + w + "."; },
    leave: "Leave your message: we answer it when we open.", thanks: "Thank you for your answer.", comment: "Comment",
    score: function (n) { return "Score " + n + " of 5"; },
    yourEmail: "Your email", transcript: "Email me the transcript", transcriptSent: "The transcript is on its way to your inbox."
  };
  var title = script.getAttribute("data-title") || L.title;
  var token = script.getAttribute("data-customer-token") || null;
  var topic = script.getAttribute("data-topic") || null;
  var store = {
    get: function (k) { try { return JSON.parse(localStorage.getItem("switchboard." + k)); } catch (e) { return null; } },
    set: function (k, v) { try { localStorage.setItem("switchboard." + k, JSON.stringify(v)); } catch (e) {} },
    del: function (k) { try { localStorage.removeItem("switchboard." + k); } catch (e) {} }
  };
  var visitor = store.get("visitor") || ("v-" + Math.random().toString(36).slice(2) + Date.now().toString(36));
  store.set("visitor", visitor);
  var chat = store.get("chat");         /* {chat_id, resume_token, last_seq} */
  var pending = store.get("pending") || []; /* messages not yet acknowledged */
  var ws = null, backoff = 500, pinger = null, open = false, ended = false;

  var css = "#sb-chat{position:fixed;right:16px;bottom:16px;font:14px/1.4 system-ui,sans-serif;z-index:2147483000}" +
    "#sb-chat button{cursor:pointer}#sb-toggle{border:0;border-radius:20px;padding:10px 16px;background:#1f6feb;color:#fff}" +
    "#sb-panel{display:none;flex-direction:column;width:300px;height:400px;background:#fff;border:1px solid #ccc;border-radius:8px;box-shadow:0 4px 16px rgba(0,0,0,.2)}" +
    "#sb-panel.open{display:flex}#sb-head{display:flex;align-items:center;padding:8px 12px;background:#1f6feb;color:#fff;border-radius:8px 8px 0 0}" +
    "#sb-title{flex:1}#sb-end{border:1px solid #fff;background:transparent;color:#fff;border-radius:4px;font-size:12px}" +
    "#sb-log{flex:1;overflow:auto;padding:8px}#sb-log div{margin:4px 0}.sb-agent{color:#0a3069}.sb-visitor{text-align:right}" +
    ".sb-note{color:#666;font-size:12px;text-align:center}#sb-form{display:flex;border-top:1px solid #eee}" +
    "#sb-text{flex:1;border:0;padding:8px}#sb-send{border:0;background:#1f6feb;color:#fff;padding:0 12px}" +
    "#sb-survey{padding:8px;border-top:1px solid #eee}#sb-survey button{margin:2px;min-width:32px}#sb-survey input{width:100%;box-sizing:border-box;margin-top:4px}" +
    "#sb-transcript{display:flex;gap:4px;padding:4px 8px;border-top:1px solid #eee}#sb-transcript input{flex:1;min-width:0}";
  var root = document.createElement("div");
  root.id = "sb-chat";
  root.innerHTML = "<style>" + css + "</style><div id='sb-panel' role='dialog' aria-label='Chat'>" +
    "<div id='sb-head'><span id='sb-title'></span><button id='sb-end' type='button'></button></div>" +
    "<div id='sb-log' aria-live='polite'></div><div id='sb-status' class='sb-note'></div>" +
    "<form id='sb-form'><input id='sb-text' autocomplete='off' maxlength='4000'>" +
    "<button id='sb-send' type='submit'></button></form></div><button id='sb-toggle' type='button'></button>";
  function $(id) { return root.querySelector("#" + id); }
  function mount() {
    document.body.appendChild(root);
    $("sb-title").textContent = title;
    $("sb-toggle").textContent = title;
    $("sb-send").textContent = L.send;
    $("sb-text").setAttribute("aria-label", L.message);
    $("sb-end").textContent = L.end;
    /* The visitor ends the chat: a waiting one is withdrawn, a served one closed. */
    $("sb-end").onclick = function () { if (chat) send({ type: "close" }); else { end(); $("sb-panel").classList.remove("open"); } };
    $("sb-toggle").onclick = function () { $("sb-panel").classList.toggle("open"); if (!ws) connect(); };
    $("sb-form").onsubmit = function (e) {
      e.preventDefault();
      var text = $("sb-text").value.trim();
      if (!text) return;
      $("sb-text").value = "";
      if ($("sb-status").textContent === L.first) status("");
      var m = { id: "m-" + Date.now().toString(36) + Math.random().toString(36).slice(2, 6), text: text };
      pending.push(m);
      store.set("pending", pending);
      line("visitor", text, "visitor:" + m.id);
      send({ type: "message", id: m.id, text: text });
    };
    $("sb-text").oninput = function () { send({ type: "typing" }); };
    if (chat) { $("sb-panel").classList.add("open"); connect(); }
  }
  function line(who, text, id) {
    if (id && root.querySelector("[data-id='" + CSS.escape(id) + "']")) return;
    var d = document.createElement("div");
    d.className = "sb-" + who;
    if (id) d.setAttribute("data-id", id);
    d.textContent = text; /* text, never HTML */
    $("sb-log").appendChild(d);
    $("sb-log").scrollTop = $("sb-log").scrollHeight;
  }
  function status(text) { $("sb-status").textContent = text || ""; }
  function send(frame) { if (ws && open) ws.send(JSON.stringify(frame)); }
  function connect() {
    if (ended) return;
    ws = new WebSocket(wsUrl);
    ws.onopen = function () {
      open = true;
      backoff = 500;
      if (chat) send({ type: "resume", chat_id: chat.chat_id, resume_token: chat.resume_token, last_seq: chat.last_seq || 0 });
      else send({ type: "start", visitor_id: visitor, customer_token: token, topic: topic });
      clearInterval(pinger);
      pinger = setInterval(function () { send({ type: "ping" }); }, 20000);
    };
    ws.onmessage = function (e) {
      var f;
      try { f = JSON.parse(e.data); } catch (x) { return; }
      if (f.type === "started") {
        chat = { chat_id: f.chat_id, resume_token: f.resume_token, last_seq: 0 };
        store.set("chat", chat);
        flush();
        /* Nobody is asked to answer before the visitor has written. */
        if (!pending.length) status(L.first);
        if (f.closed) closedNow(f.closed);
      } else if (f.type === "resumed") {
        flush();
        /* Back to a chat the visitor has not written in yet. */
        if (!f.missed && !(chat && chat.last_seq) && !pending.length) status(L.first);
      } else if (f.type === "ack") {
        pending = pending.filter(function (m) { return m.id !== f.id; });
        store.set("pending", pending);
      } else if (f.type === "busy") {
        /* Many chats are starting at once: this one starts again shortly, its place shown. */
        status(L.line(f.position, 0));
        setTimeout(function () { if (open && !chat) send({ type: "start", visitor_id: visitor, customer_token: token, topic: topic }); }, (f.retry_in_secs || 5) * 1000);
      } else if (f.type === "queue") {
        status(L.line(f.position, f.estimated_wait_secs ? Math.ceil(f.estimated_wait_secs / 60) : 0));
      }
      if (typeof f.seq === "number" && f.seq > 0 && f.type !== "ack") {
        if (chat) { chat.last_seq = Math.max(chat.last_seq || 0, f.seq); store.set("chat", chat); }
        if (f.type === "message") line(f.from, f.text, f.from + ":" + f.id);
        if (f.type === "agent_joined") { status(""); line("note", L.joined(f.name)); }
        if (f.type === "closed") {
          line("note", L.ended);
          status("");
          $("sb-end").style.display = "none";
          /* The chat is over: nothing to resume after a reload; the page may still ask
             for the transcript and answer the survey for a while. */
          store.del("chat");
          transcriptForm();
          if (f.survey) survey(f.survey.question); else { $("sb-form").style.display = "none"; setTimeout(function () { if (!ended) end(); }, 300000); }
        }
      }
      if (f.type === "transcript_queued") { var tb = $("sb-transcript"); if (tb) tb.textContent = L.transcriptSent; }
      if (f.type === "rated") { $("sb-survey").textContent = L.thanks; setTimeout(end, $("sb-transcript") && $("sb-transcript").querySelector("input") ? 120000 : 1500); }
      if (f.type === "error" && (f.code === "already_rated" || f.code === "not_completed")) end();
      if (f.type === "error" && f.code === "unknown_chat") { store.del("chat"); chat = null; ws.close(); }
    };
    ws.onclose = function () {
      open = false;
      clearInterval(pinger);
      if (ended) return;
      status(L.reconnecting);
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 15000);
    };
  }
  /* Taken while closed: the hours, and the message is kept for the opening. */
  function closedNow(c) {
    line("note", c.message);
    if (c.opens_at_local) line("note", L.opens(c.opens_at_local));
    (c.hours || []).forEach(function (h) { line("note", h); });
    status(L.leave);
  }
  /* After the chat: its transcript mailed to the visitor, once. */
  function transcriptForm() {
    if ($("sb-transcript")) return;
    var box = document.createElement("form");
    box.id = "sb-transcript";
    var input = document.createElement("input");
    input.type = "email";
    input.placeholder = L.yourEmail;
    input.setAttribute("aria-label", L.yourEmail);
    var b = document.createElement("button");
    b.type = "submit";
    b.textContent = L.transcript;
    box.onsubmit = function (e) { e.preventDefault(); if (input.value.trim()) send({ type: "transcript", email: input.value.trim() }); };
    box.appendChild(input);
    box.appendChild(b);
    $("sb-panel").insertBefore(box, $("sb-status"));
  }
  /* Completed by its agent: one question, a score of 1 to 5 and a comment. */
  function survey(question) {
    var box = document.createElement("div");
    box.id = "sb-survey";
    var q = document.createElement("div");
    q.textContent = question;
    box.appendChild(q);
    var comment = document.createElement("input");
    comment.setAttribute("aria-label", L.comment);
    comment.maxLength = 2000;
    for (var n = 1; n <= 5; n++) {
      (function (score) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = String(score);
        b.setAttribute("aria-label", L.score(score));
        b.onclick = function () { send({ type: "rating", score: score, comment: comment.value.trim() || null }); };
        box.appendChild(b);
      })(n);
    }
    box.appendChild(comment);
    $("sb-form").replaceWith(box);
    setTimeout(function () { if (!ended) end(); }, 300000);
  }
  function flush() { status(""); pending.forEach(function (m) { send({ type: "message", id: m.id, text: m.text }); }); }
  function end() { ended = true; store.del("chat"); store.del("pending"); pending = []; if (ws) ws.close(); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
