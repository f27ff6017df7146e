// The dashboard's live caption table: one page at a time from /api/v1/projects/<slug>/captions/, sorted,
// searched and paginated by the server, refreshed every 10 s while the page is visible.
import { api } from "./api.js";

const card = document.getElementById("captions");
const PAGE = 50;
const REFRESH_MS = 10000;

if (card) {
  const levels = card.dataset.levels ? card.dataset.levels.split("|") : [];
  const body = card.querySelector("#caption-table tbody");
  const search = card.querySelector("#caption-search");
  const prev = card.querySelector("#caption-prev");
  const next = card.querySelector("#caption-next");
  const range = card.querySelector("#caption-range");
  const state = { sort: "rank", q: "", offset: 0, total: 0 };
  let pending = 0;

  const number = (value, digits) => (value === null || value === undefined ? "–" : value.toFixed(digits));

  function cell(text, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (numeric) td.className = "num";
    return td;
  }

  function render(table) {
    state.total = table.total;
    body.replaceChildren();
    if (!table.rows.length) {
      const td = cell(state.q ? "No caption matches." : "No captions yet.", false);
      td.colSpan = levels.length + 6;
      td.className = "muted";
      const tr = document.createElement("tr");
      tr.append(td);
      body.append(tr);
    }
    for (const row of table.rows) {
      const tr = document.createElement("tr");
      tr.dataset.responseId = row.response_id;
      tr.append(cell(String(row.rank), true), cell(row.caption, false));
      for (const level of levels) tr.append(cell(String(row.counts[level] ?? 0), true));
      tr.append(
        cell(String(row.votes), true),
        cell(number(row.mean, 3), true),
        cell(number(row.precision, 3), true),
        cell(row.ci_low === null ? "–" : `${number(row.ci_low, 2)}–${number(row.ci_high, 2)}`, true),
      );
      body.append(tr);
    }
    const last = Math.min(state.offset + table.rows.length, table.total);
    range.textContent = table.total ? `${state.offset + 1}–${last} of ${table.total}` : "";
    prev.disabled = state.offset === 0;
    next.disabled = last >= table.total;
    for (const button of card.querySelectorAll("button.sort")) {
      const key = button.dataset.sort;
      const mark = state.sort === key ? " ▲" : state.sort === `-${key}` ? " ▼" : "";
      button.textContent = key + mark;
      button.setAttribute("aria-sort", mark ? (mark === " ▲" ? "ascending" : "descending") : "none");
    }
  }

  async function load() {
    const ticket = ++pending;
    const params = new URLSearchParams({ sort: state.sort, q: state.q, offset: state.offset, limit: PAGE });
    try {
      const table = await api("GET", `${card.dataset.api}?${params}`);
      if (ticket === pending) render(table);
    } catch (error) {
      range.textContent = error.message;
    }
  }

  for (const button of card.querySelectorAll("button.sort")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      // Rank and caption read best/first at the top ascending; counts and means read best at the top descending.
      const firstWay = key === "rank" || key === "caption" ? key : `-${key}`;
      state.sort = state.sort === firstWay ? (firstWay.startsWith("-") ? key : `-${key}`) : firstWay;
      state.offset = 0;
      load();
    });
  }
  let typing = 0;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.q = search.value.trim();
      state.offset = 0;
      load();
    }, 250);
  });
  prev.addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE);
    load();
  });
  next.addEventListener("click", () => {
    state.offset += PAGE;
    load();
  });
  setInterval(() => {
    if (!document.hidden) load();
  }, REFRESH_MS);
  load();
}
