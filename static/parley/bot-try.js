/* The bot page's "try it" box: asks the bot through the console and shows the answer and
   every retrieved chunk with its scores. All text goes in with textContent (it is
   untrusted: documents and model output). */
(function () {
  "use strict";

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function score(value) {
    return value === null || value === undefined ? "—" : Number(value).toFixed(3);
  }

  function render(box, data) {
    var out = box.querySelector(".bot-try-result");
    out.textContent = "";
    if (data.error && !data.answer) {
      out.appendChild(el("p", "errornote", data.error));
    }
    var answer = el("div", "bot-try-answer" + (data.answered ? "" : " bot-try-refused"));
    answer.appendChild(el("strong", null, data.answered ? "Answer" : "Not answered"));
    answer.appendChild(el("p", null, data.answer));
    var meta = data.latency_ms + " ms";
    if (data.usage) {
      meta += " · " + data.usage.input + " tokens in / " + data.usage.output + " out" +
        (data.usage.estimated ? " (estimated)" : "");
    }
    answer.appendChild(el("p", "bot-try-meta", meta));
    out.appendChild(answer);
    var table = el("table", "bot-try-chunks");
    var head = el("tr");
    ["#", "Score", "Vector", "Keyword", "Document", "Passage"].forEach(function (h) {
      head.appendChild(el("th", null, h));
    });
    table.appendChild(head);
    data.chunks.forEach(function (chunk, i) {
      var row = el("tr", chunk.used ? "used" : "unused");
      row.appendChild(el("td", null, i + 1));
      row.appendChild(el("td", null, score(chunk.score) + (chunk.used ? "" : " (below " + data.threshold + ")")));
      row.appendChild(el("td", null, score(chunk.vector_score)));
      row.appendChild(el("td", null, score(chunk.keyword_score)));
      var doc = el("td");
      doc.appendChild(el("div", null, chunk.document.title || chunk.document.url));
      if (chunk.heading_path && chunk.heading_path.length) {
        doc.appendChild(el("div", "bot-try-meta", chunk.heading_path.join(" › ")));
      }
      row.appendChild(doc);
      row.appendChild(el("td", "bot-try-passage", chunk.text));
      table.appendChild(row);
    });
    if (!data.chunks.length) {
      out.appendChild(el("p", null, "Retrieval found nothing in the bot's knowledge bases."));
    } else {
      out.appendChild(table);
    }
  }

  function ask(box) {
    var input = box.querySelector("input");
    var question = input.value.trim();
    if (!question) return;
    var out = box.querySelector(".bot-try-result");
    out.textContent = "Asking…";
    fetch(box.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ question: question }),
    })
      .then(function (response) { return response.json(); })
      .then(function (data) { render(box, data); })
      .catch(function () { out.textContent = "The request failed."; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".bot-try").forEach(function (box) {
      box.querySelector("button").addEventListener("click", function () { ask(box); });
      box.querySelector("input").addEventListener("keydown", function (event) {
        if (event.key === "Enter") { event.preventDefault(); ask(box); }
      });
    });
  });
})();
