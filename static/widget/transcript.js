/* Parley chat page: the transcript's DOM (messages, answers with citations, sources and
 * rating buttons, notices, the typing indicator, the email form when nobody is available).
 *
 * Everything is built with createElement and textContent; answers go through
 * markdown.js, which never parses HTML. chat.js owns the socket and tells this what to show;
 * what the visitor does here (rate, ask for a person, leave an email) goes back through the
 * `actions` given to the constructor.
 */
(function (root) {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var THUMB = "M7 10v11H3V10h4zm2 11h8.3a2 2 0 0 0 2-1.6l1.3-7A2 2 0 0 0 18.6 10H14l.7-4.1a1.7 1.7 0 0 0-3.1-1.2L9 10v11z";
  var CITATIONS = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  function icon(d, flip) {
    var node = document.createElementNS(SVG_NS, "svg");
    node.setAttribute("viewBox", "0 0 24 24");
    node.setAttribute("aria-hidden", "true");
    node.setAttribute("focusable", "false");
    if (flip) node.setAttribute("transform", "rotate(180)");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("fill", "currentColor");
    node.appendChild(path);
    return node;
  }

  function newTabLink(href, text, cls) {
    var a = el("a", cls, text);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    return a;
  }

  /* options: list (the <ol>), scroller, strings, markdown, actions {rate, handoff, lead},
     offerHandoff (the bot's setting) */
  function Transcript(options) {
    this.list = options.list;
    this.scroller = options.scroller;
    this.t = options.strings;
    this.md = options.markdown;
    this.actions = options.actions;
    this.offerHandoff = options.offerHandoff;
    this.count = 0;
    this.answers = {};
  }

  Transcript.prototype.nearBottom = function () {
    var s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  };

  Transcript.prototype.scrollDown = function (force) {
    if (force || this.nearBottom()) this.scroller.scrollTop = this.scroller.scrollHeight;
  };

  /* Appends an item, keeping the view at the bottom if the visitor was there. */
  Transcript.prototype.add = function (li, force) {
    var stick = force || this.nearBottom();
    this.list.appendChild(li);
    this.scrollDown(stick);
    return li;
  };

  Transcript.prototype.notice = function (text, isError) {
    return this.add(el("li", "notice" + (isError ? " notice-error" : ""), text));
  };

  Transcript.prototype.user = function (text) {
    var li = el("li", "message message-user");
    li.appendChild(el("span", "visually-hidden", this.t.you + ":"));
    li.appendChild(el("div", "bubble", text));
    return this.add(li, true);
  };

  Transcript.prototype.agent = function (message) {
    var li = el("li", "message message-agent");
    li.appendChild(el("p", "author", message.author || this.t.agent));
    var bubble = el("div", "bubble");
    bubble.appendChild(this.md.render(message.content, {}));
    li.appendChild(bubble);
    return this.add(li);
  };

  Transcript.prototype.typing = function (show) {
    var old = document.getElementById("typing");
    if (old) old.remove();
    if (!show) return;
    var li = el("li", "message message-bot typing");
    li.id = "typing";
    li.appendChild(el("span", "visually-hidden", this.t.typing));
    var bubble = el("div", "bubble");
    bubble.setAttribute("aria-hidden", "true");
    for (var i = 0; i < 3; i++) bubble.appendChild(el("span", "dot"));
    li.appendChild(bubble);
    this.add(li, true);
  };

  /* Everything but the greeting, before a redraw from the server's record. */
  Transcript.prototype.clear = function () {
    Array.prototype.slice.call(this.list.children).forEach(function (li) {
      if (!li.classList.contains("greeting")) li.remove();
    });
    this.answers = {};
  };

  Transcript.prototype.answer = function (streaming) {
    return new Answer(this, streaming);
  };

  Transcript.prototype.handoffButton = function (parent) {
    var self = this;
    var button = el("button", "inline-handoff", this.t.handoff);
    button.type = "button";
    button.addEventListener("click", function () {
      button.disabled = true;
      self.actions.handoff();
    });
    parent.appendChild(button);
  };

  /* Nobody can answer now: the visitor may leave an email address (once per page). */
  Transcript.prototype.leadForm = function () {
    if (document.getElementById("lead-email")) return;
    var self = this;
    var li = el("li", "notice lead");
    var form = el("form", "lead-form");
    form.noValidate = true;
    var label = el("label", null, this.t.leadLabel);
    label.htmlFor = "lead-email";
    var input = el("input");
    input.type = "email";
    input.id = "lead-email";
    input.autocomplete = "email";
    input.required = true;
    input.maxLength = 254;
    var button = el("button", "lead-send", this.t.leadSend);
    button.type = "submit";
    form.appendChild(label);
    form.appendChild(input);
    form.appendChild(button);
    li.appendChild(form);
    input.addEventListener("input", function () { input.removeAttribute("aria-invalid"); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!input.value.trim() || !input.checkValidity()) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      input.removeAttribute("aria-invalid");
      button.disabled = true;
      self.actions.lead(input.value.trim());
    });
    this.add(li, true);
  };

  Transcript.prototype.leadSaved = function (saved) {
    var li = document.querySelector(".lead");
    if (!li) return;
    var button = li.querySelector(".lead-send");
    if (saved) li.replaceChildren(document.createTextNode(this.t.leadSaved));
    else if (button) button.disabled = false;
  };

  /* An answer: its text re-rendered as it streams, its sources and rating below. */
  function Answer(view, streaming) {
    view.count += 1;
    this.view = view;
    this.key = "a" + view.count;
    this.text = "";
    this.sources = null;
    this.id = null;
    this.pending = false;
    this.li = el("li", "message message-bot");
    this.li.appendChild(el("span", "visually-hidden", view.t.bot + ":"));
    this.bubble = el("div", "bubble");
    this.li.appendChild(this.bubble);
    this.extras = el("div", "extras");
    this.li.appendChild(this.extras);
    if (streaming) {
      this.li.setAttribute("aria-busy", "true"); /* read once complete, not token by token */
      this.li.classList.add("is-streaming");
    }
    view.add(this.li);
  }

  Answer.prototype.sourceFor = function (number) {
    var sources = this.sources || [];
    for (var i = 0; i < sources.length; i++) {
      if (sources[i].number === number) return sources[i];
    }
    return null;
  };

  Answer.prototype.cite = function (number) {
    var t = this.view.t;
    var source = this.sourceFor(number);
    if (this.sources && !source) return null; /* not a citation: "[7]" stays text */
    var label = t.citation.replace("%(n)s", number);
    if (!source) {
      var span = el("span", "cite", String(number)); /* sources not here yet */
      span.setAttribute("aria-label", label);
      return span;
    }
    var url = this.view.md.safeUrl(source.url);
    var a = url ? newTabLink(url, String(number), "cite") : el("a", "cite", String(number));
    if (!url) a.href = "#src-" + this.key + "-" + number;
    a.title = source.title || label;
    a.setAttribute("aria-label", label + (source.title ? ": " + source.title : ""));
    return a;
  };

  Answer.prototype.render = function () {
    var self = this;
    var stick = this.view.nearBottom();
    var opts = { cite: function (n) { return self.cite(n); } };
    this.bubble.replaceChildren(this.view.md.render(this.text, opts));
    this.view.scrollDown(stick);
  };

  Answer.prototype.append = function (text) {
    this.text += text;
    if (this.pending) return;
    this.pending = true;
    var self = this;
    /* tokens can arrive faster than frames: render at most once per frame */
    window.requestAnimationFrame(function () {
      self.pending = false;
      self.render();
    });
  };

  Answer.prototype.renderSources = function () {
    var t = this.view.t;
    var md = this.view.md;
    if (!this.sources || !this.sources.length) return;
    var cited = {};
    this.text.replace(CITATIONS, function (all, numbers) {
      numbers.split(",").forEach(function (n) { cited[parseInt(n, 10)] = true; });
      return all;
    });
    var shown = this.sources.filter(function (s) { return cited[s.number]; });
    if (!shown.length) shown = this.sources;
    var block = el("div", "sources-block");
    var title = el("p", "sources-title", t.sources);
    title.id = "sources-" + this.key;
    block.appendChild(title);
    var list = el("ol", "sources");
    list.setAttribute("aria-labelledby", title.id);
    var key = this.key;
    shown.forEach(function (source) {
      var li = el("li");
      li.id = "src-" + key + "-" + source.number;
      li.appendChild(el("span", "number", "[" + source.number + "]"));
      var name = source.title || source.url || t.source + " " + source.number;
      var url = md.safeUrl(source.url);
      var body = el("span");
      body.appendChild(url ? newTabLink(url, name) : el("span", null, name));
      var path = (source.heading_path || []).filter(function (part) { return typeof part === "string" && part; });
      if (path.length) body.appendChild(el("span", "where", " · " + path.join(" › ")));
      li.appendChild(body);
      list.appendChild(li);
    });
    block.appendChild(list);
    this.extras.appendChild(block);
  };

  Answer.prototype.finish = function (done) {
    this.li.removeAttribute("aria-busy");
    this.li.classList.remove("is-streaming");
    if (done.stopped) {
      this.li.classList.add("is-stopped");
      this.text = this.text ? this.text + " " + this.view.t.stopped : this.view.t.stopped;
    }
    this.render();
    this.bubble.hidden = !this.text; /* a failed answer: the error notice says it all */
    this.renderSources();
    if (done.message_id) {
      this.id = done.message_id;
      this.view.answers[this.id] = this;
      if (this.text && !done.stopped) this.addRating(done.rating || "");
    }
    if (done.handoff && this.view.offerHandoff) this.view.handoffButton(this.li);
  };

  Answer.prototype.addRating = function (rating) {
    var self = this;
    var t = this.view.t;
    var row = el("div", "actions");
    [["up", t.helpful], ["down", t.notHelpful]].forEach(function (pair) {
      var button = el("button", "rate rate-" + pair[0]);
      button.type = "button";
      button.setAttribute("aria-label", pair[1]);
      button.title = pair[1];
      button.setAttribute("aria-pressed", String(rating === pair[0]));
      button.appendChild(icon(THUMB, pair[0] === "down"));
      button.addEventListener("click", function () {
        self.showRating(pair[0], false);
        self.view.actions.rate(self.id, pair[0]);
      });
      row.appendChild(button);
    });
    var thanks = el("span", "thanks");
    thanks.setAttribute("role", "status");
    row.appendChild(thanks);
    this.extras.appendChild(row);
    this.actions = row;
  };

  Answer.prototype.showRating = function (rating, thank) {
    if (!this.actions) return;
    this.actions.querySelectorAll(".rate").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.classList.contains("rate-" + rating)));
    });
    if (thank) this.actions.querySelector(".thanks").textContent = this.view.t.thanks;
  };

  root.ParleyTranscript = Transcript;
})(window);
