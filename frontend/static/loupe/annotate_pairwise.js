// Pairwise preference: two answers side by side (their order was randomized by the server and is
// recorded); A / B / tie / both bad by button or keys 1-4, a strength (slightly / clearly) and a reason.
import { Annotator, el, isTyping } from "./annotate.js";

const CHOICE_KEYS = { Digit1: "a", Digit2: "b", Digit3: "tie", Digit4: "both_bad" };
const SAID = { a: "A is better", b: "B is better", tie: "Tie", both_bad: "Both bad" };

function strength() {
  return Number(document.querySelector("input[name=strength]:checked").value);
}

function setStrength(value) {
  document.querySelector(`input[name=strength][value="${value}"]`).checked = true;
}

const handler = {
  label: (index) => (index === 0 ? "A" : "B"),
  render(task, answer) {
    el("answer-a").querySelector(".text").textContent = task.responses[0].text;
    el("answer-b").querySelector(".text").textContent = task.responses[1] ? task.responses[1].text : "";
    setStrength(answer ? answer.strength : 1);
    el("choices").classList.remove("awaiting");
    el("reason").value = answer ? answer.reason : "";
    document.querySelectorAll("[data-choice]").forEach((button) =>
      button.classList.toggle("chosen", Boolean(answer) && button.dataset.choice === answer.choice));
  },
  // Ctrl+Enter (from the reason box, or anywhere): sends the choice already marked (when changing an earlier
  // answer), else finishes the reason and asks for a choice key; the reason goes with that choice.
  submitKey() {
    const marked = document.querySelector("[data-choice].chosen");
    if (marked) {
      this.choose(marked.dataset.choice, false);
      return;
    }
    el("reason").blur();
    const kept = el("reason").value.trim() ? "Reason kept. " : "";
    annotator.setStatus(`${kept}Now choose: 1 A better · 2 B better · 3 tie · 4 both bad.`);
    el("choices").classList.add("awaiting");
  },
  choose(choice, clearly) {
    const chosenStrength = clearly ? 2 : strength();
    const how = choice === "a" || choice === "b" ? ` (${chosenStrength === 2 ? "clearly" : "slightly"})` : "";
    annotator.submit({ choice, strength: chosenStrength, reason: el("reason").value }, `${SAID[choice]}${how}.`);
  },
  onKey(event) {
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return false;
    const choice = CHOICE_KEYS[event.code];
    if (choice) {
      event.preventDefault();
      this.choose(choice, event.shiftKey && (choice === "a" || choice === "b"));
      return true;
    }
    if (event.key === "c" || event.key === "C") {
      event.preventDefault();
      setStrength(strength() === 1 ? 2 : 1);
      return true;
    }
    if (event.key === "r" || event.key === "R") {
      event.preventDefault();
      el("reason").focus();
      return true;
    }
    return false;
  },
};

const annotator = new Annotator(handler);
document.querySelectorAll("[data-choice]").forEach((button) =>
  button.addEventListener("click", () => handler.choose(button.dataset.choice, false)));
annotator.start();
