// Crowd rating (New Yorker caption contest style): one image and one caption at a time, the project's
// scale on buttons and keys 1..k; a key press stores the rating and brings the next caption.
import { Annotator, el, isTyping } from "./annotate.js";

const LEVELS = JSON.parse(el("scale-data").textContent);

const handler = {
  label: () => "Caption",
  render(task, answer) {
    el("caption").textContent = task.responses[0].text;
    document.querySelectorAll("[data-level]").forEach((button) =>
      button.classList.toggle("chosen", Boolean(answer) && Number(button.dataset.level) === answer.level));
  },
  rate(level) {
    annotator.submit({ level }, `Rated “${LEVELS[level]}”.`);
  },
  onKey(event) {
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return false;
    const digit = /^Digit([1-9])$/.exec(event.code);
    if (digit && Number(digit[1]) <= LEVELS.length) {
      event.preventDefault();
      this.rate(Number(digit[1]) - 1);
      return true;
    }
    return false;
  },
};

const annotator = new Annotator(handler);
document.querySelectorAll("[data-level]").forEach((button) =>
  button.addEventListener("click", () => handler.rate(Number(button.dataset.level))));
annotator.start();
