// Datasets page: import files, freeze snapshots and start exports through the REST API, then follow the
// jobs' progress until they finish (the download link appears when an export has succeeded).
import { api } from "./api.js";

const root = document.getElementById("datasets");
const slug = root.dataset.project;
const status = document.getElementById("datasets-status");
const jobsBody = document.querySelector("#jobs tbody");

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function say(text, kind = "") {
  status.textContent = text;
  status.className = `status ${kind}`;
}

function describe(job) {
  if (job.kind === "export") return `export snapshot ${job.snapshot} as ${job.params.format}`;
  return `import ${job.params.file_name || ""} (${job.params.format})`;
}

function resultCell(job) {
  const cell = document.createElement("td");
  cell.className = "result";
  if (job.download_url) {
    const link = document.createElement("a");
    link.className = "button";
    link.href = job.download_url;
    link.textContent = "Download zip";
    cell.append(link);
  } else if (job.status === "failed") {
    const error = document.createElement("span");
    error.className = "error";
    error.textContent = job.log.trim().split("\n").slice(-3).join(" ");
    cell.append(error);
  } else if (job.status === "succeeded" && job.kind === "import") {
    cell.textContent = `${job.result.created} new items, ${job.result.annotations} annotations, ${job.result.pairs} pairs` +
      (job.result.self_pairs_dropped ? ` (${job.result.self_pairs_dropped} same-answer pairs dropped)` : "");
  }
  return cell;
}

function render(job) {
  let row = jobsBody.querySelector(`tr[data-job="${job.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.job = job.id;
    jobsBody.prepend(row);
  }
  row.dataset.status = job.status;
  row.replaceChildren();
  const cells = [String(job.id), `${job.kind} ${describe(job).replace(/^\w+ /, "")}`];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
  }
  const badge = document.createElement("td");
  badge.innerHTML = `<span class="badge"></span>`;
  badge.firstChild.classList.add(job.status);
  badge.firstChild.textContent = job.status;
  row.append(badge);
  const progress = document.createElement("td");
  const bar = document.createElement("progress");
  bar.max = job.total || 1;
  bar.value = job.status === "succeeded" ? bar.max : job.done;
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = ` ${job.done} / ${job.total}`;
  progress.append(bar, count);
  row.append(progress, resultCell(job));
}

async function poll() {
  const active = [...jobsBody.querySelectorAll("tr[data-job]")].filter((row) =>
    ["queued", "running"].includes(row.dataset.status),
  );
  for (const row of active) {
    try {
      render(await api("GET", `/api/v1/jobs/${row.dataset.job}/`));
    } catch (error) {
      say(error.message, "error");
    }
  }
  setTimeout(poll, active.length ? 1000 : 4000);
}

document.querySelectorAll(".export-form").forEach((form) => {
  const conversational = form.querySelector("[name=conversational]");
  const syncOptions = () => {
    const options = form.format.selectedOptions[0]?.dataset.options || "";
    conversational.disabled = !options.split(",").includes("conversational");
    if (conversational.disabled) conversational.checked = false;
  };
  form.format.addEventListener("change", syncOptions);
  syncOptions();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await api("POST", `/api/v1/snapshots/${form.dataset.snapshot}/export-jobs/`, {
        format: form.format.value,
        split: form.split.value,
        conversational: conversational.checked,
      });
      render(job);
      say(`Export job ${job.id} started.`, "ok");
    } catch (error) {
      say(error.message, "error");
    }
  });
});

document.getElementById("snapshot-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const number = (name) => (form[name].value === "" ? null : Number(form[name].value));
  const body = {
    kind: form.kind.value,
    sources: [...form.querySelectorAll("[name=sources]:checked")].map((box) => box.value),
    min_agreement: number("min_agreement") ?? 0,
    min_margin: number("min_margin") ?? 0,
    annotators: form.annotators.value.split(",").map((name) => name.trim()).filter(Boolean),
    date_from: form.date_from.value || null,
    date_to: form.date_to.value || null,
    sft_threshold: number("sft_threshold"),
    seed: number("seed") ?? 0,
    test_fraction: number("test_fraction") ?? 0.1,
    split_by: form.split_by.value || null,
  };
  try {
    const snapshot = await api("POST", `/api/v1/projects/${slug}/snapshots/`, body);
    // Warnings (e.g. a split that left a side empty) also show in the snapshot's row after the reload.
    say(`Snapshot ${snapshot.id}: ${snapshot.n_rows} rows. ${snapshot.warnings.join(" ")}`, snapshot.warnings.length ? "error" : "ok");
    window.location.reload();
  } catch (error) {
    say(error.message, "error");
  }
});

const importForm = document.getElementById("import-form");
const cartoonField = document.getElementById("cartoon-field");
const syncCartoon = () => {
  cartoonField.hidden = importForm.format.value !== "caption-contest";
};
importForm.format.addEventListener("change", syncCartoon);
syncCartoon();
importForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData();
  data.append("format", importForm.format.value);
  data.append("file", importForm.file.files[0]);
  if (importForm.images.files[0]) data.append("images", importForm.images.files[0]);
  if (!cartoonField.hidden && importForm.image.files[0]) data.append("image", importForm.image.files[0]);
  const response = await fetch(`/api/v1/projects/${slug}/import-jobs/`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken() },
    body: data,
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    say(body.message || `Import refused (${response.status})`, "error");
    return;
  }
  render(body);
  say(`Import job ${body.id} started.`, "ok");
});

poll();
