/* Parley console, knowledge pages.
 *
 * Live ingestion progress: every element carrying data-source-id and data-live is refreshed
 * from the admin's JSON progress feed every 1.5 s while any shown source is pending or
 * running; polling stops once all are finished (or after repeated errors). Text from the feed
 * (titles, errors) is only ever set with textContent, never as HTML.
 *
 * Q&A form: "Add another pair" appends a row to the Django formset.
 * Add-website form: only the fields that apply to the chosen kind are shown.
 */
(function () {
  "use strict";

  const INTERVAL_MS = 1500;
  const MAX_FAILURES = 5;
  const ACTIVE = new Set(["pending", "running"]);

  function liveElements(id) {
    const selector = id === undefined ? "[data-source-id][data-live]" : `[data-source-id="${id}"][data-live]`;
    return Array.from(document.querySelectorAll(selector));
  }

  function progressUrl() {
    const carrier = document.querySelector("[data-progress-url]");
    return carrier ? carrier.dataset.progressUrl : null;
  }

  function activeIds() {
    const ids = new Set();
    for (const el of document.querySelectorAll('[data-live="progress"]')) {
      if (ACTIVE.has(el.dataset.status)) ids.add(el.dataset.sourceId);
    }
    return Array.from(ids);
  }

  // Same wording as admin_views.progress_label.
  function label(s) {
    if (s.is_web) {
      let web = `discovered ${s.documents_total} · fetched ${s.documents_fetched} · ` +
        `indexed ${s.documents_indexed} · unchanged ${s.documents_unchanged} · ` +
        `failed ${s.documents_failed}`;
      if (s.documents_removed) web += ` · removed ${s.documents_removed}`;
      return web;
    }
    let text = `${s.progress}% · ${s.documents_done}/${s.documents_total} done`;
    if (s.documents_failed) text += `, ${s.documents_failed} failed`;
    return `${text} · ${s.chunks} chunks`;
  }

  function setBadge(el, status, text) {
    el.className = el.className.replace(/parley-badge-\S+/, `parley-badge-${status}`);
    el.textContent = text;
  }

  function updateSource(s) {
    for (const el of liveElements(s.id)) {
      const kind = el.dataset.live;
      if (kind === "status") {
        setBadge(el, s.status, s.status_label);
      } else if (kind === "error") {
        el.textContent = s.error;
      } else if (kind === "active-only") {
        el.hidden = !ACTIVE.has(s.status);
      } else if (kind === "progress") {
        el.dataset.status = s.status;
        const track = el.querySelector(".parley-progress-track");
        const fill = el.querySelector(".parley-progress-fill");
        const text = el.querySelector(".parley-progress-label");
        const error = el.querySelector(".parley-progress-error");
        if (track) track.setAttribute("aria-valuenow", String(s.progress));
        if (fill) {
          fill.style.width = `${s.progress}%`;
          fill.className = `parley-progress-fill parley-progress-fill-${s.status}`;
        }
        if (text) text.textContent = label(s);
        if (error) {
          error.textContent = s.error;
          error.title = s.error;
        }
      }
    }
    if (s.documents) updateDocuments(s.id, s.documents);
  }

  function cell(className) {
    const td = document.createElement("td");
    td.className = className;
    return td;
  }

  function documentRow(doc) {
    const row = document.createElement("tr");
    row.dataset.documentId = String(doc.id);
    const title = cell("doc-title");
    const link = document.createElement("a");
    link.href = doc.url;
    title.appendChild(link);
    const status = cell("doc-status");
    const badge = document.createElement("span");
    badge.className = "parley-badge parley-badge-pending";
    status.appendChild(badge);
    row.append(title, status, cell("doc-outcome"), cell("doc-chunks"), cell("doc-error"));
    return row;
  }

  function updateDocuments(sourceId, documents) {
    const table = document.querySelector(`[data-documents-for="${sourceId}"]`);
    if (!table) return;
    const body = table.tBodies[0];
    for (const doc of documents) {
      let row = body.querySelector(`tr[data-document-id="${doc.id}"]`);
      if (!row) {
        row = documentRow(doc);
        body.appendChild(row);
      }
      row.querySelector(".doc-title a").textContent = doc.title;
      setBadge(row.querySelector(".doc-status .parley-badge"), doc.status, doc.status_label);
      const outcome = row.querySelector(".doc-outcome");
      if (outcome) outcome.textContent = doc.outcome_label || "";
      row.querySelector(".doc-chunks").textContent = String(doc.chunk_count);
      row.querySelector(".doc-error").textContent = doc.error;
    }
    const empty = document.querySelector(`[data-documents-empty="${sourceId}"]`);
    if (empty && documents.length) empty.hidden = true;
  }

  function startPolling() {
    const url = progressUrl();
    if (!url) return;
    let failures = 0;

    async function poll() {
      const ids = activeIds();
      if (!ids.length) return; // everything shown has finished
      const query = new URLSearchParams({ ids: ids.join(",") });
      if (ids.length === 1 && document.querySelector(`[data-documents-for="${ids[0]}"]`)) {
        query.set("documents", "1");
      }
      try {
        const response = await fetch(`${url}?${query}`, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const data = await response.json();
        const seen = new Set();
        for (const source of data.sources) {
          updateSource(source);
          seen.add(String(source.id));
        }
        // A source deleted meanwhile: stop asking for it.
        for (const id of ids) {
          if (!seen.has(id)) {
            for (const el of liveElements(id)) el.dataset.status = "gone";
          }
        }
        failures = 0;
      } catch (err) {
        failures += 1;
        if (failures >= MAX_FAILURES) {
          console.warn("Parley: stopped polling ingestion progress:", err);
          return;
        }
      }
      window.setTimeout(poll, INTERVAL_MS);
    }

    window.setTimeout(poll, INTERVAL_MS);
  }

  function setUpFormsets() {
    for (const button of document.querySelectorAll("[data-formset-add]")) {
      const prefix = button.dataset.formsetAdd;
      const body = document.querySelector(`[data-formset-body="${prefix}"]`);
      const template = document.querySelector(`template[data-formset-template="${prefix}"]`);
      const total = document.getElementById(`id_${prefix}-TOTAL_FORMS`);
      const max = document.getElementById(`id_${prefix}-MAX_NUM_FORMS`);
      if (!body || !template || !total) continue;
      button.addEventListener("click", () => {
        const index = Number(total.value);
        if (max && index >= Number(max.value)) return;
        const html = template.innerHTML.replace(/__prefix__/g, String(index));
        const holder = document.createElement("tbody");
        holder.innerHTML = html; // Django's own empty form: no user text in it
        const row = holder.firstElementChild;
        row.querySelector(".parley-qa-number").textContent = String(index + 1);
        body.appendChild(row);
        total.value = String(index + 1);
        const first = row.querySelector("textarea");
        if (first) first.focus();
      });
    }
  }

  function setUpWebSourceForm() {
    const form = document.querySelector("[data-web-source-form]");
    if (!form) return;
    const radios = Array.from(form.querySelectorAll('input[name="kind"]'));
    const fields = Array.from(form.querySelectorAll("[data-web-kinds]"));
    function show() {
      const checked = radios.find((radio) => radio.checked);
      const kind = checked ? checked.value : "";
      for (const field of fields) {
        const row = field.closest(".form-row");
        if (row) row.hidden = !field.dataset.webKinds.split(" ").includes(kind);
      }
    }
    for (const radio of radios) radio.addEventListener("change", show);
    show();
  }

  function init() {
    startPolling();
    setUpFormsets();
    setUpWebSourceForm();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
