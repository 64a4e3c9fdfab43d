/* The live handoff inbox: one WebSocket to /ws/staff/inbox/ (the console session), the
   queue on the left, the open conversation on the right. Visitor text is untrusted: it only
   ever goes into the page through textContent. Reconnects with backoff; sends a heartbeat
   so that visitors are told an agent is online. */
(function () {
  "use strict";

  var root, socket, openId = null, conversations = {}, retry = 0, heartbeat = null;

  function $(selector) { return root.querySelector(selector); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function send(payload) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(payload));
  }

  function setState(text) { $(".handoff-state").textContent = text; }

  function label(c) {
    if (c.status === "waiting") return "waiting";
    if (c.status === "agent") return c.agent ? "with " + c.agent : "with an agent";
    return c.status;
  }

  function renderQueue() {
    var list = $(".handoff-list");
    list.textContent = "";
    var ids = Object.keys(conversations).filter(function (id) {
      var s = conversations[id].status;
      return s === "waiting" || s === "agent";
    });
    ids.sort(function (a, b) {
      return String(conversations[a].waiting_since).localeCompare(String(conversations[b].waiting_since));
    });
    $(".handoff-empty").hidden = ids.length > 0;
    ids.forEach(function (id) {
      var c = conversations[id];
      var item = el("li");
      var button = el("button");
      button.type = "button";
      button.dataset.id = id;
      if (id === openId) button.setAttribute("aria-current", "true");
      var badge = el("span", "badge badge-" + c.status, label(c));
      button.appendChild(badge);
      if (c.unread) button.appendChild(el("span", "badge badge-new", c.unread + " new"));
      button.appendChild(el("strong", null, c.title || "(no question yet)"));
      var meta = c.bot + (c.lead_email ? " · lead: " + c.lead_email : "");
      button.appendChild(el("br"));
      button.appendChild(el("small", null, meta));
      button.addEventListener("click", function () { open(id); });
      item.appendChild(button);
      list.appendChild(item);
    });
  }

  function renderHeader() {
    var c = conversations[openId];
    if (!c) return;
    $("#chat-title").textContent = c.title || "Conversation";
    var meta = c.bot + " · " + label(c) + " · " + c.channel;
    if (c.lead_email) meta += " · lead: " + c.lead_email;
    $(".handoff-meta").textContent = meta;
    var mine = c.status === "agent" && c.agent === root.dataset.me;
    $("[data-action=take]").hidden = mine;
    $("[data-action=release]").hidden = !mine;
    $("[data-action=close]").disabled = c.status === "closed";
    $("#handoff-text").disabled = !mine;
    $(".handoff-reply button").disabled = !mine;
  }

  function addMessage(m) {
    var item = el("li", "from-" + m.role);
    var who = m.role === "user" ? "Visitor" : m.role === "agent" ? (m.author || "Agent") : "Bot";
    item.appendChild(el("span", "who", who));
    item.appendChild(el("span", null, m.content));
    var list = $(".handoff-transcript");
    list.appendChild(item);
    list.scrollTop = list.scrollHeight;
  }

  function open(id) {
    openId = id;
    if (conversations[id]) conversations[id].unread = 0;
    $(".handoff-chat").hidden = false;
    $(".handoff-transcript").textContent = "";
    send({ type: "open", conversation_id: id });
    renderQueue();
    renderHeader();
  }

  function handle(data) {
    if (data.type === "queue") {
      conversations = {};
      data.conversations.forEach(function (c) { conversations[c.id] = c; });
    } else if (data.type === "update") {
      var known = conversations[data.conversation.id] || {};
      data.conversation.unread = known.unread || 0;
      conversations[data.conversation.id] = data.conversation;
    } else if (data.type === "message") {
      var c = conversations[data.conversation.id] || data.conversation;
      c.status = data.conversation.status;
      if (data.conversation.id === openId) {
        addMessage(data.message);
      } else if (data.message.role === "user") {
        c.unread = (c.unread || 0) + 1;
      }
      conversations[c.id] = c;
    } else if (data.type === "transcript") {
      conversations[data.conversation.id] = data.conversation;
      $(".handoff-transcript").textContent = "";
      data.messages.forEach(addMessage);
    } else if (data.type === "error") {
      setState(data.message);
      return;
    }
    renderQueue();
    renderHeader();
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.socket);
    socket.onopen = function () {
      retry = 0;
      setState("Live: new requests appear here as they come.");
      if (openId) send({ type: "open", conversation_id: openId });
      clearInterval(heartbeat);
      heartbeat = setInterval(function () { send({ type: "heartbeat" }); }, 20000);
    };
    socket.onmessage = function (event) { handle(JSON.parse(event.data)); };
    socket.onclose = function (event) {
      clearInterval(heartbeat);
      if (event.code === 4403) { setState("You may not answer conversations."); return; }
      var delay = Math.min(30000, 500 * Math.pow(2, retry++)) * (0.5 + Math.random());
      setState("Disconnected; reconnecting…");
      setTimeout(connect, delay);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    root = document.querySelector(".handoff");
    if (!root) return;
    ["take", "release", "close"].forEach(function (action) {
      $("[data-action=" + action + "]").addEventListener("click", function () {
        if (openId) send({ type: action, conversation_id: openId });
      });
    });
    $(".handoff-reply").addEventListener("submit", function (event) {
      event.preventDefault();
      var text = $("#handoff-text").value.trim();
      if (!text || !openId) return;
      send({ type: "reply", conversation_id: openId, text: text });
      $("#handoff-text").value = "";
    });
    $("#handoff-text").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        $(".handoff-reply").requestSubmit();
      }
    });
    connect();
  });
})();
