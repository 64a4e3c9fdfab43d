/* Parley's markdown subset for answers, rendered straight to DOM nodes.
 *
 * Answers quote retrieved documents, and documents are untrusted: whatever HTML they hold
 * must show as text. So nothing here ever parses HTML (no innerHTML): every piece of the
 * answer becomes a text node, and only the elements below are created, by us:
 *   paragraphs (single newlines kept as line breaks), ### headings (as <h3>), > quotes,
 *   - / 1. lists (one level of nesting), ``` code blocks, `inline code`, **bold**,
 *   *italics*, [links](https://…) and bare https:// URLs (http and https only, opening in a
 *   new tab with rel="noopener noreferrer nofollow"), and citations [1] / [1, 2] through
 *   the caller's `cite(n)` hook.
 * An unclosed ``` while an answer streams renders as code up to the end, and a later token
 * closing it simply re-renders (the caller renders the whole text each time).
 */
(function (root) {
  "use strict";

  var MAX_DEPTH = 4;

  function el(tag, cls) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    return node;
  }

  /* An absolute http(s) URL, normalised, or null: no javascript:, data:, relative URLs. */
  function safeUrl(value) {
    try {
      var url = new URL(String(value).trim());
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(href) {
    var a = el("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    return a;
  }

  /* Index of the closing emphasis marker, or -1: it must follow a non-space, and a single
     marker must not be half of a double one. */
  function findClose(text, marker, from) {
    var i = from;
    while ((i = text.indexOf(marker, i)) > -1) {
      var single = marker.length === 1;
      if (single && text[i + 1] === marker) { i += 2; continue; }
      if (!/\s/.test(text[i - 1]) && (marker[0] !== "_" || !/\w/.test(text[i + marker.length] || ""))) {
        return i;
      }
      i += marker.length;
    }
    return -1;
  }

  function inline(text, parent, opts, depth) {
    var buf = "";
    var i = 0;
    var rest, m;
    function flush() {
      if (buf) parent.appendChild(document.createTextNode(buf));
      buf = "";
    }
    while (i < text.length) {
      var c = text[i];
      rest = text.slice(i);
      if (c === "\\" && /^\\[\\`*_[\]()#+\-.!>]/.test(rest)) {
        buf += text[i + 1];
        i += 2;
        continue;
      }
      if (c === "`") {
        var run = /^`+/.exec(rest)[0];
        var end = text.indexOf(run, i + run.length);
        if (end > -1) {
          flush();
          var code = el("code");
          code.textContent = text.slice(i + run.length, end).replace(/^ ([\s\S]*) $/, "$1");
          parent.appendChild(code);
          i = end + run.length;
          continue;
        }
        buf += run;
        i += run.length;
        continue;
      }
      if ((c === "*" || c === "_") && depth < MAX_DEPTH) {
        var marker = text[i + 1] === c ? c + c : c;
        var next = text[i + marker.length] || "";
        var opens = next && !/\s/.test(next) && (c === "*" || !/\w/.test(text[i - 1] || ""));
        var close = opens ? findClose(text, marker, i + marker.length) : -1;
        if (close > -1) {
          flush();
          var strong = el(marker.length === 2 ? "strong" : "em");
          inline(text.slice(i + marker.length, close), strong, opts, depth + 1);
          parent.appendChild(strong);
          i = close + marker.length;
          continue;
        }
        buf += marker;
        i += marker.length;
        continue;
      }
      if (c === "[") {
        m = /^\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/.exec(rest);
        if (m && opts.cite) {
          var nodes = m[1].split(",").map(function (n) { return opts.cite(parseInt(n, 10)); });
          if (nodes.every(Boolean)) {
            flush();
            nodes.forEach(function (node) { parent.appendChild(node); });
            i += m[0].length;
            continue;
          }
        }
        /* the URL may hold one level of balanced parentheses, as Wikipedia's do */
        m = /^\[([^\]\n]+)\]\(\s*<?((?:[^()\s<>]|\([^()\s<>]*\))+)>?(?:\s+"[^"\n]*")?\s*\)/.exec(rest);
        if (m && depth < MAX_DEPTH) {
          flush();
          var href = safeUrl(m[2]);
          var target = href ? link(href) : parent;
          inline(m[1], target, opts, depth + 1);
          if (href) parent.appendChild(target);
          i += m[0].length;
          continue;
        }
      }
      if (c === "h" && !/\w/.test(text[i - 1] || "") && (m = /^https?:\/\/[^\s<>"'`]+/.exec(rest))) {
        var url = m[0].replace(/[.,;:!?)\]'"]+$/, "");
        var safe = safeUrl(url);
        if (safe) {
          flush();
          var a = link(safe);
          a.textContent = url;
          parent.appendChild(a);
          i += url.length;
          continue;
        }
      }
      buf += c;
      i += 1;
    }
    flush();
  }

  /* Lines joined with <br>, each rendered inline. */
  function lines(list, parent, opts) {
    list.forEach(function (line, index) {
      if (index) parent.appendChild(el("br"));
      inline(line, parent, opts, 0);
    });
  }

  var LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  var FENCE = /^\s*(```|~~~)/;

  function isBlockStart(line) {
    return FENCE.test(line) || /^#{1,6}\s/.test(line) || /^>\s?/.test(line) || LIST_ITEM.test(line)
      || /^\s*([-*_])(\s*\1){2,}\s*$/.test(line);
  }

  /* A list starting at lines[start]; returns the index after it. Items indented deeper than
     the first item's marker become a nested list. */
  function list(src, start, parent, opts) {
    var first = LIST_ITEM.exec(src[start]);
    var indent = first[1].length;
    var ordered = /\d/.test(first[2]);
    var node = el(ordered ? "ol" : "ul");
    if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
    var i = start;
    var item = null;
    var itemLines = [];
    function finishItem() {
      if (item) lines(itemLines, item, opts);
      itemLines = [];
    }
    while (i < src.length) {
      var line = src[i];
      if (!line.trim()) {
        if (i + 1 < src.length && LIST_ITEM.test(src[i + 1])) { i++; continue; }
        break;
      }
      var m = LIST_ITEM.exec(line);
      if (m && m[1].length > indent && item) {
        finishItem();
        i = list(src, i, item, opts);
        continue;
      }
      if (m && m[1].length <= indent) {
        if (m[1].length < indent || /\d/.test(m[2]) !== ordered) break;
        finishItem();
        item = el("li");
        node.appendChild(item);
        itemLines.push(m[3]);
      } else if (item && !isBlockStart(line)) {
        itemLines.push(line.trim());
      } else {
        break;
      }
      i++;
    }
    finishItem();
    parent.appendChild(node);
    return i;
  }

  function render(text, opts) {
    opts = opts || {};
    var frag = document.createDocumentFragment();
    var src = String(text || "").replace(/\r\n?/g, "\n").split("\n");
    var i = 0;
    while (i < src.length) {
      var line = src[i];
      if (!line.trim()) { i++; continue; }
      var fence = FENCE.exec(line);
      if (fence) {
        var body = [];
        i++;
        while (i < src.length && !(new RegExp("^\\s*" + fence[1] + "\\s*$").test(src[i]))) body.push(src[i++]);
        i++;
        var pre = el("pre");
        var code = el("code");
        code.textContent = body.join("\n");
        pre.appendChild(code);
        frag.appendChild(pre);
        continue;
      }
      var heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (heading) {
        var h = el("h3");
        inline(heading[1], h, opts, 0);
        frag.appendChild(h);
        i++;
        continue;
      }
      if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
        frag.appendChild(el("hr"));
        i++;
        continue;
      }
      if (/^>\s?/.test(line)) {
        var quoted = [];
        while (i < src.length && /^>\s?/.test(src[i])) quoted.push(src[i++].replace(/^>\s?/, ""));
        var quote = el("blockquote");
        quote.appendChild(render(quoted.join("\n"), opts));
        frag.appendChild(quote);
        continue;
      }
      if (LIST_ITEM.test(line)) {
        i = list(src, i, frag, opts);
        continue;
      }
      var para = [];
      while (i < src.length && src[i].trim() && !(para.length && isBlockStart(src[i]))) para.push(src[i++]);
      var p = el("p");
      lines(para, p, opts);
      frag.appendChild(p);
    }
    return frag;
  }

  root.ParleyMarkdown = { render: render, safeUrl: safeUrl };
})(window);
