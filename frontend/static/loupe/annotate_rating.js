// Crowd rating (New Yorker caption contest style): one image and one caption at a time, the project's
// scale on buttons and keys 1..k; a key press stores the rating and brings the next caption.
// A key pressed while the rating before it is still being saved (or the next caption loading) is queued
// for the next caption and said so on the page; one more while one waits is refused, visibly. None is
// dropped without a word. The next caption is prefetched while one is shown (see annotate.js), so a key
// shows it at once; a key pressed while the rating before it is saved then rates that caption.
import { Annotator, el, isTyping } from "./annotate.js";

const LEVELS = JSON.parse(el("scale-data").textContent);

let queued = null; // the level waiting for the next caption, or null

function showChoice(level) {
  document.querySelectorAll("[data-level]").forEach((button) =>
    button.classList.toggle("chosen", level !== null && Number(button.dataset.level) === level));
}

const handler = {
  prefetch: true,
  label: () => "Caption",
  render(task, answer) {
    el("caption").textContent = task.responses[0].text;
    showChoice(answer ? answer.level : null);
  },
  rate(level) {
    if (annotator.busy) {
      if (queued === null) {
        queued = level;
        annotator.setStatus(`“${LEVELS[level]}” will rate the next caption.`, "ok");
      } else {
        annotator.setStatus(
          `Not taken: “${LEVELS[queued]}” is already waiting for the next caption.`, "error");
      }
      return;
    }
    if (!annotator.task) {
      annotator.setStatus(`Not taken: there is no caption to rate “${LEVELS[level]}”.`, "error");
      return;
    }
    showChoice(level); // the button shows the choice at once, before the server answers
    annotator.submit({ level }, `Rated “${LEVELS[level]}”.`);
  },
  ready() {
    if (queued === null) return;
    const level = queued;
    queued = null;
    if (annotator.task) this.rate(level);
    else annotator.setStatus(`Not rated “${LEVELS[level]}”: no caption is left for you.`, "error");
  },
  failed(message) {
    if (queued === null) return;
    annotator.setStatus(`${message} “${LEVELS[queued]}”, pressed meanwhile, was not taken either.`, "error");
    queued = null;
  },
  onKey(event) {
    if (isTyping(event.target) || event.ctrlKey || event.metaKey || event.altKey) return false;
    const digit = /^Digit([1-9])$/.exec(event.code);
    if (digit && Number(digit[1]) <= LEVELS.length) {
      event.preventDefault();
      if (!event.repeat) this.rate(Number(digit[1]) - 1); // a held key is one press
      return true;
    }
    return false;
  },
};

const annotator = new Annotator(handler);
document.querySelectorAll("[data-level]").forEach((button) =>
  button.addEventListener("click", () => handler.rate(Number(button.dataset.level))));
annotator.start();
