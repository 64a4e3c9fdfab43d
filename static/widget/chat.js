/* Parley hosted chat page: the visitor socket (docs/visitor-socket.md) and the composer.
 *
 * Settings and interface strings come from two json_script blocks rendered by the server
 * (no inline script: the page's CSP allows our own files only); transcript.js draws the
 * messages. The visitor id (per tenant host) and the conversation id (per bot) live in
 * localStorage so that a reload or a reconnect resumes the conversation: every (re)connect
 * sends `resume`, and the transcript is redrawn from the `history` the server returns.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("parley-config").textContent);
  var t = JSON.parse(document.getElementById("parley-strings").textContent);

  var PERMANENT_CLOSE = [4403, 4404]; /* origin refused, unknown bot: reconnecting won't help */
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_MAX_MS = 20000;
  var STABLE_MS = 5000;
  var VISITOR_KEY = "parley.visitor";
  var CONVERSATION_KEY = "parley.conversation." + config.bot;

  var $ = function (id) { return document.getElementById(id); };
  var ui = {
    body: $("chat-body"), form: $("composer"), input: $("message"), send: $("send"),
    stop: $("stop"), handoff: $("handoff"), close: $("close"), connection: $("connection"),
    suggestions: $("suggestions")
  };

  /* --- storage: localStorage when the browser allows it (an iframe may be denied) ------ */
  var memory = {};
  var store = {
    get: function (key) {
      try { return window.localStorage.getItem(key); } catch (e) { return memory[key] || null; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem(key, value); } catch (e) { memory[key] = value; }
    },
    remove: function (key) {
      try { window.localStorage.removeItem(key); } catch (e) { delete memory[key]; }
    }
  };

  function newVisitorId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes); /* also outside secure contexts, unlike randomUUID */
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  var visitorId = store.get(VISITOR_KEY);
  if (!visitorId || !/^[A-Za-z0-9_-]{8,64}$/.test(visitorId)) {
    visitorId = newVisitorId();
    store.set(VISITOR_KEY, visitorId);
  }
  var conversationId = store.get(CONVERSATION_KEY);

  /* --- state ---------------------------------------------------------------------------- */
  var socket = null;
  var attempts = 0;
  var openedAt = 0;
  var reconnectTimer = null;
  var closedForGood = false;
  var outbox = []; /* messages typed while the socket was down */
  var answer = null; /* the answer being streamed */
  var waiting = false; /* a question was asked, its `done` has not arrived */
  var questionSent = false; /* ... and it left on the current socket (not in the outbox) */
  var lastQuestion = "";
  var lastQuestionLi = null;
  var resuming = false; /* a `resume` is on its way: its `not_found` means "start over" */
  var status = "bot";
  var agentName = "";

  var view = new window.ParleyTranscript({
    list: $("transcript"),
    scroller: ui.body,
    strings: t,
    markdown: window.ParleyMarkdown,
    offerHandoff: config.offerHandoff,
    actions: {
      rate: function (messageId, rating) {
        send({ type: "feedback", message_id: messageId, rating: rating, visitor_id: visitorId });
      },
      handoff: requestHandoff,
      lead: function (email) { send({ type: "lead", email: email, visitor_id: visitorId }); }
    }
  });

  function setConnection(text) {
    ui.connection.textContent = text || "";
  }

  /* The header's status line: the connection when it is in trouble, else who is answering. */
  function statusLine() {
    if (status === "waiting") return t.waitingShort;
    if (status === "agent") return agentName || t.agent;
    return "";
  }

  function updateComposer() {
    ui.send.hidden = waiting;
    ui.stop.hidden = !waiting;
    ui.send.disabled = closedForGood;
  }

  function tellParent(kind) {
    if (config.embedded && window.parent !== window) {
      /* only a notification ("close", "reply"): nothing private travels in it */
      window.parent.postMessage({ parley: kind }, "*");
    }
  }

  function startAnswer() {
    view.typing(false);
    answer = view.answer(true);
    return answer;
  }

  function drawHistory(history) {
    view.clear();
    answer = null;
    history.messages.forEach(function (message) {
      if (message.role === "user") {
        view.user(message.content);
      } else if (message.role === "agent") {
        view.agent(message);
      } else {
        var past = view.answer(false);
        past.text = message.content;
        past.sources = message.sources || [];
        past.finish({ message_id: message.id, rating: message.rating });
      }
    });
    if (waiting && lastQuestionLi) {
      /* a question queued while offline goes out after `resume`: keep it at the end */
      view.add(lastQuestionLi, true);
      view.typing(true);
    }
    if (history.messages.length) hideSuggestions();
    showStatus({ status: history.status }, false);
    view.scrollDown(true);
  }

  /* --- the socket ------------------------------------------------------------------------- */
  function socketUrl() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + location.host + config.socketPath + "?channel=" + encodeURIComponent(config.channel);
  }

  function connect() {
    reconnectTimer = null;
    if (socket || closedForGood) return;
    var ws = new WebSocket(socketUrl());
    socket = ws;
    /* "Connecting…" only when it takes a while: no flash on every page load */
    var slow = window.setTimeout(function () {
      if (ws.readyState === WebSocket.CONNECTING) setConnection(attempts ? t.reconnecting : t.connecting);
    }, attempts ? 0 : 800);
    ws.onopen = function () {
      window.clearTimeout(slow);
      openedAt = Date.now();
      setConnection(statusLine());
      if (conversationId) {
        resuming = true;
        send({ type: "resume", conversation_id: conversationId, visitor_id: visitorId });
      }
      var queued = outbox;
      outbox = [];
      queued.forEach(send);
    };
    ws.onmessage = function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data && typeof data.type === "string") handle(data);
    };
    ws.onclose = function (event) {
      window.clearTimeout(slow);
      socket = null;
      resuming = false;
      /* a socket that closes right after opening keeps backing off (a server in trouble) */
      if (openedAt && Date.now() - openedAt > STABLE_MS) attempts = 0;
      openedAt = 0;
      if (answer || questionSent) interrupted();
      if (PERMANENT_CLOSE.indexOf(event.code) > -1) {
        closedForGood = true;
        setConnection("");
        view.notice(t.unavailable, true);
        updateComposer();
        return;
      }
      scheduleReconnect();
    };
  }

  /* Exponential backoff with "equal jitter": half the delay fixed, half random, so that
     visitors cut off together do not all come back in the same instant. */
  function scheduleReconnect() {
    if (reconnectTimer || closedForGood) return;
    var ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * Math.pow(2, attempts));
    attempts += 1;
    setConnection(navigator.onLine === false ? t.offline : t.reconnecting);
    reconnectTimer = window.setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
  }

  function reconnectNow() {
    if (socket || closedForGood) return;
    if (reconnectTimer) window.clearTimeout(reconnectTimer);
    reconnectTimer = null;
    connect();
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
      if (message.type === "message") questionSent = true;
    } else if (message.type === "message" || message.type === "handoff") {
      outbox.push(message);
      reconnectNow();
    }
  }

  function interrupted() {
    /* the server saved what it streamed; `resume` on reconnect redraws it */
    view.typing(false);
    if (answer) answer.finish({ stopped: true });
    answer = null;
    waiting = questionSent = false;
    updateComposer();
  }

  /* --- server messages -------------------------------------------------------------------- */
  function handle(data) {
    switch (data.type) {
      case "conversation":
        conversationId = data.id;
        store.set(CONVERSATION_KEY, data.id);
        break;
      case "token":
        (answer || startAnswer()).append(data.text || "");
        break;
      case "sources":
        (answer || startAnswer()).sources = Array.isArray(data.items) ? data.items : [];
        break;
      case "done":
        view.typing(false);
        /* no answer at all: a person has the conversation (`forwarded`), or it failed */
        if (answer || data.stopped || data.handoff) (answer || startAnswer()).finish(data);
        answer = null;
        waiting = questionSent = false;
        updateComposer();
        if (!data.forwarded) tellParent("reply");
        break;
      case "rated":
        if (view.answers[data.message_id]) view.answers[data.message_id].showRating(data.rating, true);
        break;
      case "status":
        showStatus(data, true);
        break;
      case "history":
        resuming = false;
        drawHistory(data);
        break;
      case "agent_message":
        if (data.message) {
          view.agent(data.message);
          tellParent("reply");
        }
        break;
      case "lead":
        view.leadSaved(Boolean(data.saved));
        break;
      case "error":
        onError(data);
        break;
    }
  }

  function onError(data) {
    if (resuming && (data.code === "not_found" || data.code === "invalid")) {
      /* a stored conversation the server no longer knows (deleted, another bot): start over */
      resuming = false;
      store.remove(CONVERSATION_KEY);
      conversationId = null;
      return;
    }
    resuming = false;
    var known = {
      too_long: t.tooLong,
      busy: t.busy,
      rate_limited: t.rateLimited.replace("%(seconds)s", data.retry_after || 60)
    };
    if (!answer) view.typing(false);
    if (waiting && !answer && data.code !== "provider_error") {
      /* the question was refused before any answer: give the visitor their text back */
      waiting = questionSent = false;
      if (lastQuestionLi) lastQuestionLi.remove();
      if (!ui.input.value) ui.input.value = lastQuestion;
      updateComposer();
    }
    if (answer && data.code === "provider_error") answer.li.classList.add("is-error");
    view.leadSaved(false); /* a refused email address: the form may be sent again */
    view.notice(known[data.code] || data.message || t.error, true);
  }

  /* `status` (live, announced in the transcript) or the status of a resumed conversation. */
  function showStatus(data, announce) {
    var changed = data.status !== status || (data.agent && data.agent !== agentName);
    status = data.status;
    if (data.agent) agentName = data.agent;
    if (ui.handoff) ui.handoff.disabled = status === "waiting" || status === "agent";
    if (status !== "bot") hideSuggestions(); /* questions for the bot, not for a person */
    if (socket) setConnection(statusLine());
    var nobody = status === "waiting" && data.available === false;
    if (!announce || !(changed || nobody)) return;
    var text = {
      waiting: nobody ? data.message || t.nobodyAvailable : t.statusWaiting,
      agent: agentName ? t.agentJoined.replace("%(name)s", agentName) : t.statusAgent,
      closed: t.statusClosed,
      bot: t.statusBot
    }[status];
    if (text) view.notice(text, false);
    if (nobody) view.leadForm();
  }

  /* --- visitor actions -------------------------------------------------------------------- */
  function ask(text) {
    text = text.trim();
    if (!text || waiting || closedForGood) return;
    if (text.length > config.maxLength) {
      view.notice(t.tooLong, true);
      return;
    }
    hideSuggestions();
    lastQuestionLi = view.user(text);
    view.typing(true);
    waiting = true;
    lastQuestion = text;
    updateComposer();
    /* no conversation_id: the socket continues the conversation it resumed or started, so a
       stale stored id can never send a question astray */
    send({ type: "message", text: text, visitor_id: visitorId });
  }

  function requestHandoff() {
    send({ type: "handoff", visitor_id: visitorId });
  }

  function hideSuggestions() {
    if (ui.suggestions) ui.suggestions.hidden = true;
  }

  function autoGrow() {
    ui.input.style.height = "auto";
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 140) + "px";
  }

  ui.form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = ui.input.value;
    if (!text.trim() || waiting) return;
    ui.input.value = "";
    autoGrow();
    ask(text);
    ui.input.focus();
  });

  ui.input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (ui.form.requestSubmit) ui.form.requestSubmit();
      else ui.form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  ui.input.addEventListener("input", autoGrow);

  ui.stop.addEventListener("click", function () {
    send({ type: "stop" });
    ui.input.focus();
  });

  if (ui.handoff) ui.handoff.addEventListener("click", requestHandoff);

  if (ui.suggestions) {
    ui.suggestions.addEventListener("click", function (event) {
      var chip = event.target.closest(".chip");
      if (!chip) return;
      ask(chip.textContent);
      ui.input.focus();
    });
  }

  if (ui.close) ui.close.addEventListener("click", function () { tellParent("close"); });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && config.embedded) tellParent("close");
  });

  window.addEventListener("message", function (event) {
    /* the widget asks for focus when it opens the panel */
    if (event.source === window.parent && event.data && event.data.parley === "focus") ui.input.focus();
  });

  window.addEventListener("online", reconnectNow);
  window.addEventListener("offline", function () { setConnection(t.offline); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") reconnectNow();
  });

  updateComposer();
  connect();
  if (!config.embedded) ui.input.focus();
})();
