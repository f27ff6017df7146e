// Dashboard: imports run as data jobs (as on the datasets page) whose rows follow their progress; when one
// succeeds the figures and the task table are refreshed in place. Members: a role change submits at once,
// a removal asks first.
import { api, apiCall } from "./api.js";

const form = document.getElementById("import-form");
const status = document.getElementById("import-status");
const jobsTable = document.getElementById("import-jobs");
const jobsBody = jobsTable.querySelector("tbody");
const cartoonField = document.getElementById("cartoon-field");

function say(text, kind = "") {
  status.textContent = text;
  status.className = `status ${kind}`;
}

function failure(job) {
  const lines = (job.log || "").trim().split("\n").filter(Boolean);
  const last = (lines.length ? lines[lines.length - 1] : "the import failed").replace(/^\[loupe\] failed: /, "");
  // The service's message, then its details as JSON ({"line": 3, "field": "prompt"}).
  const match = last.match(/^(.*?) (\{.*\})$/);
  if (!match) return last;
  let extra = {};
  try {
    extra = JSON.parse(match[2]);
  } catch (error) {
    return last;
  }
  const where = [extra.line && !match[1].includes(`line ${extra.line}`) ? `line ${extra.line}` : "", extra.field && !match[1].includes(extra.field) ? `field ${extra.field}` : ""];
  const detail = where.filter(Boolean).join(", ");
  return detail ? `${match[1]} (${detail})` : match[1];
}

function resultText(job) {
  if (job.status === "failed") return `Failed, nothing was stored: ${failure(job)}`;
  if (job.status === "cancelled") return "Cancelled, nothing was stored.";
  if (job.status !== "succeeded") return "";
  const result = job.result || {};
  const dropped = result.self_pairs_dropped ? ` (${result.self_pairs_dropped} same-answer pairs dropped)` : "";
  return `${result.created ?? 0} new items, ${result.annotations ?? 0} annotations, ${result.pairs ?? 0} pairs${dropped}`;
}

function render(job) {
  jobsTable.hidden = false;
  let row = jobsBody.querySelector(`tr[data-job="${job.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.job = job.id;
    jobsBody.prepend(row);
  }
  row.dataset.status = job.status;
  const cell = (text, className = "") => {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  };
  const badge = document.createElement("td");
  const span = document.createElement("span");
  span.className = `badge ${job.status}`;
  span.textContent = job.status;
  badge.append(span);
  const progress = document.createElement("td");
  const bar = document.createElement("progress");
  bar.max = job.total || 1;
  bar.value = job.status === "succeeded" ? bar.max : job.done;
  progress.append(bar, document.createTextNode(` ${job.done} / ${job.total}`));
  row.replaceChildren(
    cell(String(job.id)),
    cell(`${(job.params && job.params.file_name) || "?"} (${job.params ? job.params.format : ""})`),
    badge,
    progress,
    cell(resultText(job), job.status === "failed" ? "error" : ""),
  );
}

// The figures and the first page of tasks, as the server renders them now (no reload, no lost scroll).
async function refreshTables() {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const selector of ["#stats", "#per-hour", "#histogram", "#task-list", "#annotators tbody"]) {
    const now = document.querySelector(selector);
    const next = fresh.querySelector(selector);
    if (now && next) now.replaceWith(next);
  }
}

const following = new Set();

async function follow(jobId) {
  if (following.has(jobId)) return;
  following.add(jobId);
  for (;;) {
    let job;
    try {
      job = await api("GET", `/api/v1/jobs/${jobId}/`);
    } catch (error) {
      say(error.message, "error");
      await new Promise((resolve) => setTimeout(resolve, 3000));
      continue;
    }
    render(job);
    if (job.status === "succeeded") {
      say(`Imported ${job.params.file_name}: ${resultText(job)}.`, "ok");
      await refreshTables();
      break;
    }
    if (job.status === "failed" || job.status === "cancelled") {
      say(`Import of ${job.params.file_name} ${job.status}; nothing was stored. ${job.status === "failed" ? failure(job) : ""}`, "error");
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
  following.delete(jobId);
}

const syncCartoon = () => {
  cartoonField.hidden = form.format.value !== "caption-contest";
};
form.format.addEventListener("change", syncCartoon);
syncCartoon();

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData();
  data.append("format", form.format.value);
  data.append("file", form.file.files[0]);
  if (form.images.files[0]) data.append("images", form.images.files[0]);
  if (!cartoonField.hidden && form.image.files[0]) data.append("image", form.image.files[0]);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  say("Uploading…");
  try {
    const { data: job } = await apiCall("POST", form.dataset.url, data);
    render(job);
    say(`Import job ${job.id} started: ${job.params.file_name}.`);
    form.reset();
    syncCartoon();
    follow(job.id);
  } catch (error) {
    const extra = (error.data && error.data.extra) || {};
    const fields = extra.fields ? Object.entries(extra.fields).map(([name, problems]) => `${name}: ${[].concat(problems).join(" ")}`) : [];
    const detail = fields.length ? fields.join("; ") : `${error.message}${extra.field ? ` (${extra.field})` : ""}`;
    say(`Import refused, nothing was stored: ${detail}`, "error");
  } finally {
    button.disabled = false;
  }
});

// Recent imports, and those still running when the page was opened (someone reloaded during one).
api("GET", form.dataset.jobs)
  .then((jobs) => {
    const imports = jobs.filter((job) => job.kind === "import").slice(0, 5).reverse();
    for (const job of imports) {
      render(job);
      if (job.status === "queued" || job.status === "running") follow(job.id);
    }
  })
  .catch(() => {});

document.querySelectorAll("select.member-role").forEach((select) => {
  select.addEventListener("change", () => select.form.requestSubmit());
});
document.querySelectorAll("form.member-remove").forEach((removal) => {
  removal.addEventListener("submit", (event) => {
    if (!window.confirm(`Remove ${removal.dataset.username} from the project? Their answers stay.`)) event.preventDefault();
  });
});
