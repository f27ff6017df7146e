// AI labeler page: start a labeler job through the REST API, then follow the project's jobs (progress,
// log, cancel, resume). Every text from the server goes in through textContent, never as HTML.
import { api } from "./api.js";

const root = document.getElementById("labeler");
const slug = root.dataset.project;
const status = document.getElementById("labeler-status");
const jobsBody = document.querySelector("#labeler-jobs tbody");
const form = document.getElementById("labeler-form");
const ACTIVE = ["queued", "running"];

// The message under the forms, and the job and status it is about: a note like "Export job 3 started." goes
// once that job has moved on (its row then shows where it is), instead of staying beside a finished job.
let said = null;
function say(text, kind = "", job = null) {
  status.textContent = text;
  status.className = `status ${kind}`;
  said = job && text ? { id: job.id, status: job.status, cancel: job.cancel_requested } : null;
}

function forgetStale(job) {
  if (said && said.id === job.id && (said.status !== job.status || said.cancel !== job.cancel_requested)) say("");
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function actionButton(job, action, label) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.dataset.action = action;
  button.addEventListener("click", async () => {
    try {
      const changed = await api("POST", `/api/v1/labeler-jobs/${job.id}/${action}/`);
      render(changed);
      say(`Job ${job.id}: ${action} asked.`, "ok", changed);
      poll();
    } catch (error) {
      say(error.message, "error");
    }
  });
  return button;
}

function render(job) {
  forgetStale(job);
  let row = jobsBody.querySelector(`tr[data-job="${job.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.job = job.id;
    jobsBody.prepend(row);
  }
  row.dataset.status = job.status;
  const where = job.base_url ? ` at ${job.base_url}` : "";
  const scope = job.snapshot ? ` · snapshot ${job.snapshot}` : "";
  const badge = document.createElement("span");
  badge.className = `badge ${job.status}`;
  badge.textContent = job.cancel_requested && job.status === "running" ? "cancelling" : job.status;
  const statusCell = document.createElement("td");
  statusCell.append(badge);
  const bar = document.createElement("progress");
  bar.max = job.total || 1;
  bar.value = job.done;
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = ` ${job.done} / ${job.total} · ${job.questions} questions`;
  const progressCell = document.createElement("td");
  progressCell.append(bar, count);
  const actions = document.createElement("td");
  if (ACTIVE.includes(job.status) && !job.cancel_requested) actions.append(actionButton(job, "cancel", "Cancel"));
  if (["failed", "cancelled"].includes(job.status)) actions.append(actionButton(job, "resume", "Resume"));
  row.replaceChildren(
    cell(String(job.id)),
    cell(`${job.backend} · ${job.model}${where} · prompts ${job.prompt_version}${scope}`),
    statusCell,
    progressCell,
    cell(job.log.trim().split("\n").slice(-3).join("\n"), "log small"),
    actions,
  );
}

let polling = null;
async function poll() {
  clearTimeout(polling);
  let jobs = [];
  try {
    jobs = await api("GET", `/api/v1/projects/${slug}/labeler-jobs/`);
    jobs.slice().reverse().forEach(render);
  } catch (error) {
    say(error.message, "error");
  }
  const active = jobs.some((job) => ACTIVE.includes(job.status));
  polling = setTimeout(poll, active ? 1000 : 5000);
}

function syncBackend() {
  const field = document.getElementById("base-url-field");
  const server = form.elements.backend.value === "openai";
  field.style.display = server ? "" : "none"; // the form's CSS would override `hidden`
  form.elements.base_url.required = server;
}

form.elements.backend.addEventListener("change", syncBackend);
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const body = {
    backend: data.get("backend"),
    model: data.get("model"),
    prompt_version: data.get("prompt_version"),
    config: { batch_size: Number(data.get("batch_size") || 32) },
    rewrite: data.get("rewrite") === "on",
  };
  if (body.backend === "openai") body.base_url = data.get("base_url");
  if (data.get("snapshot")) body.snapshot = Number(data.get("snapshot"));
  try {
    const job = await api("POST", `/api/v1/projects/${slug}/labeler-jobs/start/`, body);
    render(job);
    say(`Labeler job ${job.id} queued over ${job.total} answers.`, "ok", job);
    poll();
  } catch (error) {
    say(error.message, "error");
  }
});

syncBackend();
poll();
