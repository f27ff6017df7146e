// Ranking: order N answers (shown in a randomized order) by dragging or by keys; stored as a full order,
// best first. Answers keep their letter while they move, so "C went to the top" stays readable.
import { Annotator, el, isTyping } from "./annotate.js";

const list = el("ranking");
let shownOrder = [];

function cards() {
  return Array.from(list.querySelectorAll(".rank-card"));
}

function order() {
  return cards().map((card) => Number(card.dataset.id));
}

function focusCard(index) {
  const all = cards();
  if (all.length === 0) return;
  all[Math.max(0, Math.min(all.length - 1, index))].focus();
}

function moveCard(card, to) {
  const all = cards();
  const from = all.indexOf(card);
  to = Math.max(0, Math.min(all.length - 1, to));
  if (from === to) return;
  const others = all.filter((other) => other !== card);
  if (to >= others.length) list.append(card);
  else list.insertBefore(card, others[to]);
  card.focus();
  annotator.setStatus(`${card.dataset.letter} moved to place ${to + 1}.`);
}

function makeCard(response, index) {
  const card = document.createElement("li");
  card.className = "rank-card";
  card.tabIndex = 0;
  card.dataset.id = String(response.id);
  card.dataset.letter = String.fromCharCode(65 + index);
  const handle = document.createElement("span");
  handle.className = "handle";
  handle.setAttribute("aria-hidden", "true");
  handle.textContent = "⠿";
  const letter = document.createElement("strong");
  letter.className = "letter";
  letter.textContent = card.dataset.letter;
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = response.text;
  card.append(handle, letter, text);
  card.addEventListener("pointerdown", (event) => startDrag(event, card));
  return card;
}

// Dragging with pointer events: the card follows the pointer's position among the others' midpoints.
// The listeners sit on the window: moving the card in the DOM would drop a pointer capture on it.
function startDrag(event, card) {
  if (event.button !== 0) return;
  event.preventDefault();
  card.focus();
  card.classList.add("dragging");
  const move = (moveEvent) => {
    const others = cards().filter((other) => other !== card);
    let to = others.length;
    for (let i = 0; i < others.length; i += 1) {
      const box = others[i].getBoundingClientRect();
      if (moveEvent.clientY < box.top + box.height / 2) {
        to = i;
        break;
      }
    }
    if (cards().indexOf(card) !== to) {
      if (to >= others.length) list.append(card);
      else list.insertBefore(card, others[to]);
    }
  };
  const end = () => {
    card.classList.remove("dragging");
    window.removeEventListener("pointermove", move);
    window.removeEventListener("pointerup", end);
    window.removeEventListener("pointercancel", end);
    card.focus();
    annotator.setStatus(`${card.dataset.letter} is in place ${cards().indexOf(card) + 1}.`);
  };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", end);
  window.addEventListener("pointercancel", end);
}

function submitRanking() {
  const ranked = order();
  const letters = cards().map((card) => card.dataset.letter).join(" > ");
  annotator.submit({ order: ranked }, `Ranked ${letters}.`);
}

const handler = {
  label: (index) => String.fromCharCode(65 + index),
  render(task, answer) {
    shownOrder = task.responses.map((response) => response.id);
    const byId = new Map(task.responses.map((response, index) => [response.id, makeCard(response, index)]));
    const ids = answer ? answer.order : shownOrder;
    list.replaceChildren(...ids.filter((id) => byId.has(id)).map((id) => byId.get(id)));
    focusCard(0);
  },
  dirty: () => annotator.task && annotator.task.status !== "submitted" && order().join() !== shownOrder.join(),
  submitKey: submitRanking,
  onKey(event) {
    if (isTyping(event.target) || event.ctrlKey || event.metaKey) return false;
    const card = event.target.closest && event.target.closest(".rank-card");
    const index = card ? cards().indexOf(card) : -1;
    const moving = event.shiftKey || event.altKey;
    if (event.key === "ArrowUp" || event.key === "ArrowDown" || event.key === "k" || event.key === "j") {
      event.preventDefault();
      const step = event.key === "ArrowUp" || event.key === "k" ? -1 : 1;
      if (card && moving) moveCard(card, index + step);
      else focusCard(index < 0 ? 0 : index + step);
      return true;
    }
    if (card && moving && (event.key === "Home" || event.key === "End")) {
      event.preventDefault();
      moveCard(card, event.key === "Home" ? 0 : cards().length - 1);
      return true;
    }
    if (event.key === "Enter" && !(event.target.closest && event.target.closest("button"))) {
      event.preventDefault();
      submitRanking();
      return true;
    }
    return false;
  },
};

const annotator = new Annotator(handler);
el("btn-submit").addEventListener("click", submitRanking);
annotator.start();
