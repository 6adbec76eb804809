// Progressive search results: reads /api/v1/search/stream (NDJSON) with fetch + ReadableStream
// and inserts or updates one card per work as each member answers. Every member-supplied string
// goes in through textContent, never innerHTML. No build step, no dependencies.
"use strict";

(function () {
  const configNode = document.getElementById("config");
  if (!configNode) return;
  const config = JSON.parse(configNode.textContent);
  const msg = (key, params) => {
    let text = config.messages[key] || key;
    for (const [name, value] of Object.entries(params || {})) text = text.replace("{" + name + "}", String(value));
    return text;
  };
  const el = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };

  wireMemberBoxes();
  wireNearMe();
  if (!config.stream) return;

  const results = document.getElementById("results");
  const progress = document.getElementById("progress");
  const count = document.getElementById("count");
  const cards = new Map(); // work_id -> {node, work}
  let answered = 0;
  const asked = document.querySelectorAll("#targets li").length;

  function ageText(seconds) {
    if (seconds < 60) return msg("age.s", { n: seconds });
    if (seconds < 3600) return msg("age.m", { n: Math.round(seconds / 60) });
    if (seconds < 86400) return msg("age.h", { n: Math.round(seconds / 3600) });
    return msg("age.d", { n: Math.round(seconds / 86400) });
  }

  function workLink(work) {
    const params = new URLSearchParams();
    if (work.isbns && work.isbns.length) params.set("isbn", work.isbns[0]);
    else {
      params.set("title", work.title);
      if (work.authors && work.authors.length) params.set("author", work.authors[0]);
    }
    params.set("work_id", work.work_id);
    if (config.query.near) params.set("near", config.query.near);
    params.set("lang", config.lang);
    return "/work?" + params.toString();
  }

  function byMunicipality(work) {
    const out = new Map();
    for (const member of work.holdings || []) {
      const town = config.municipalities[member.member] || member.member_name;
      const entry = out.get(town) || { copies: 0, available: 0 };
      for (const branch of member.branches) {
        for (const copy of branch.copies) {
          entry.copies += 1;
          if (copy.availability === "available") entry.available += 1;
        }
      }
      out.set(town, entry);
    }
    return out;
  }

  function render(work) {
    const node = el("li", "work-card");
    node.dataset.work = work.work_id;
    const heading = el("h3");
    const link = el("a", null, work.title + (work.volume ? " " + work.volume : ""));
    link.href = workLink(work);
    heading.appendChild(link);
    node.appendChild(heading);
    const meta = [(work.authors || []).join("、"), work.publisher, work.year].filter(Boolean).join(" / ");
    if (meta) node.appendChild(el("p", "meta", meta));
    if (work.cached) node.appendChild(el("p", "cached", msg("search.cached", { age: ageText(work.age_s || 0) })));
    if (work.holdings) {
      const towns = el("ul", "towns");
      for (const [town, entry] of byMunicipality(work)) {
        const item = el("li", entry.available ? "town available" : "town", town + " ");
        item.appendChild(el("span", "copies", msg("search.copies", entry)));
        towns.appendChild(item);
      }
      node.appendChild(towns);
    }
    return node;
  }

  function upsert(work) {
    const known = cards.get(work.work_id);
    const node = render(work);
    if (known) known.node.replaceWith(node);
    else results.appendChild(node);
    cards.set(work.work_id, { node, work });
  }

  function markTarget(target) {
    const item = document.querySelector('#targets li[data-member="' + CSS.escape(target.member) + '"]');
    if (!item) return;
    item.className = "state-" + target.state;
    item.querySelector(".state").textContent = msg("state." + target.state) + (target.reason ? " (" + target.reason + ")" : "");
  }

  // The stream's final line carries no facets: count them from the works shown (same definition
  // as index.facets for municipalities and copies on the shelf).
  function renderFacets() {
    const box = document.getElementById("facets");
    box.replaceChildren();
    const towns = new Map();
    let availableNow = 0;
    for (const { work } of cards.values()) {
      const perTown = byMunicipality(work);
      for (const town of perTown.keys()) towns.set(town, (towns.get(town) || 0) + 1);
      if ([...perTown.values()].some((e) => e.available)) availableNow += 1;
    }
    if (!towns.size) return;
    const list = el("ul", "facets");
    for (const [town, n] of towns) list.appendChild(el("li", null, town + " " + n));
    list.appendChild(el("li", "available", msg("search.available_now") + " " + availableNow));
    box.appendChild(el("h3", null, msg("search.facets")));
    box.appendChild(list);
  }

  function renderPaging(total) {
    const nav = document.getElementById("paging");
    nav.replaceChildren();
    const start = config.start;
    const link = (label, to) => {
      const params = new URLSearchParams(config.query);
      params.set("start", String(to));
      params.set("lang", config.lang);
      const a = el("a", "button secondary", label);
      a.href = "/?" + params.toString();
      nav.appendChild(a);
    };
    if (start > 1) link(msg("search.prev"), Math.max(1, start - config.page_size));
    if (total >= config.page_size) link(msg("search.next"), start + config.page_size);
  }

  function handle(line) {
    if (line.type === "cached") {
      for (const work of line.works) if (!cards.has(work.work_id)) upsert(work);
    } else if (line.type === "member" || line.type === "final") {
      for (const work of line.works) upsert(work);
      if (line.target) {
        markTarget(line.target);
        answered += 1;
        progress.textContent = line.target.member_name + ": " + msg("state." + line.target.state) + " (" + answered + "/" + asked + ")";
      }
      if (line.type === "final") {
        for (const target of line.targets || []) markTarget(target);
        renderFacets();
        renderPaging(cards.size);
        progress.textContent = cards.size ? msg("search.done") + " " + msg("search.count", { n: cards.size }) : msg("search.none");
        results.setAttribute("aria-busy", "false");
      }
    } else if (line.type === "error") {
      progress.textContent = msg("search.error");
    }
    count.textContent = msg("search.count", { n: cards.size });
  }

  async function run() {
    results.setAttribute("aria-busy", "true");
    const response = await fetch(config.stream, { headers: { Accept: "application/x-ndjson" } });
    if (!response.ok || !response.body) {
      progress.textContent = msg("search.error");
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const text = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (text) handle(JSON.parse(text));
      }
    }
    if (buffer.trim()) handle(JSON.parse(buffer));
  }

  run().catch(() => {
    progress.textContent = msg("search.error");
  });

  function wireMemberBoxes() {
    const field = document.getElementById("members-field");
    if (!field) return;
    const boxes = document.querySelectorAll(".member-box");
    const sync = () => {
      field.value = Array.from(boxes).filter((b) => b.checked).map((b) => b.value).join(",");
    };
    boxes.forEach((b) => b.addEventListener("change", sync));
  }

  function wireNearMe() {
    const button = document.getElementById("near-me");
    const select = document.getElementById("near");
    if (!button || !select || !navigator.geolocation) return;
    button.hidden = false;
    // Location only when the patron presses the button (consent), never on page load.
    button.addEventListener("click", () => {
      navigator.geolocation.getCurrentPosition((pos) => {
        const value = pos.coords.latitude.toFixed(4) + "," + pos.coords.longitude.toFixed(4);
        const option = el("option", null, msg("search.near"));
        option.value = value;
        option.selected = true;
        select.appendChild(option);
      });
    });
  }
})();
