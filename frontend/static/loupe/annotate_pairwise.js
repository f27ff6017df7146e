// Pairwise comparison page: next task -> choose A / B / tie by mouse or keys 1 / 2 / 3 -> next task.
// All model text is inserted with textContent, never as HTML.
import { api, requestId } from "./api.js";

const root = document.getElementById("annotator");
const project = root.dataset.project;
const el = (id) => document.getElementById(id);
let task = null;
let shownAt = 0;
let busy = false;

function setStatus(text) { el("status").textContent = text; }

async function loadNext() {
  task = await api("POST", `/api/v1/projects/${project}/tasks/next/`);
  if (!task) {
    el("task").hidden = true;
    el("empty").hidden = false;
    return;
  }
  el("item-prompt").textContent = task.prompt;
  const image = el("item-image");
  image.hidden = !task.image_url;
  if (task.image_url) image.src = task.image_url;
  el("answer-a").querySelector(".text").textContent = task.responses[0].text;
  el("answer-b").querySelector(".text").textContent = task.responses[1].text;
  el("task").hidden = false;
  el("task").dataset.assignment = task.assignment_id;
  shownAt = performance.now();
}

async function submit(choice) {
  if (!task || busy) return;
  busy = true;
  try {
    await api("POST", `/api/v1/projects/${project}/tasks/${task.assignment_id}/submit/`, {
      choice,
      client_request_id: requestId(),
      time_spent_ms: Math.round(performance.now() - shownAt),
    });
    el("mine").textContent = String(Number(el("mine").textContent) + 1);
    setStatus(`Saved: ${choice === "tie" ? "tie" : choice.toUpperCase() + " is better"}.`);
    await loadNext();
  } catch (error) {
    setStatus(error.message);
  } finally {
    busy = false;
  }
}

document.querySelectorAll("[data-choice]").forEach((button) =>
  button.addEventListener("click", () => submit(button.dataset.choice)));
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea")) return;
  const choice = { 1: "a", 2: "b", 3: "tie" }[event.key];
  if (choice) { event.preventDefault(); submit(choice); }
});
loadNext().catch((error) => setStatus(error.message));
