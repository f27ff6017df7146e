// Datasets page: import files, freeze snapshots and start exports through the REST API, then follow the
// jobs' progress until they finish (the download link appears when an export has succeeded).
// The freeze form shows the fields of the chosen snapshot kind only, warns about a split that will leave
// little or nothing on one side, and says what went wrong next to its button.
import { api } from "./api.js";

const root = document.getElementById("datasets");
const slug = root.dataset.project;
const status = document.getElementById("datasets-status");
const jobsBody = document.querySelector("#jobs tbody");

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

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
    link.href = root.dataset.download.replace(/\/0\/download\/$/, `/${job.id}/download/`);
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
  forgetStale(job);
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
      say(`Export job ${job.id} started.`, "ok", job);
    } catch (error) {
      say(error.message, "error");
    }
  });
});

const freezeForm = document.getElementById("snapshot-form");
const freezeStatus = document.getElementById("freeze-status");
const splitWarning = document.getElementById("split-warning");
const FREEZE_NOTE = `loupe-freeze:${slug}`; // what the freeze said, shown again after the page reloads

function sayFreeze(text, kind = "") {
  freezeStatus.textContent = text;
  freezeStatus.className = `status ${kind}`;
}

// The form's field `name` unless it is absent from this project's form or hidden for this kind.
function field(name) {
  const input = freezeForm.elements[name];
  return input && !input.closest("[hidden]") ? input : null;
}

function syncKind() {
  const kind = freezeForm.kind.value;
  freezeForm.querySelectorAll("[data-kinds]").forEach((box) => {
    box.hidden = !box.dataset.kinds.split(" ").includes(kind);
  });
  warnSplit();
}

const percent = (share) => `${Math.round(share * 100)}%`;

// A split that leaves a side empty or nearly so: said before freezing, as the snapshot's warnings say after.
function warnSplit() {
  const fraction = Number(freezeForm.test_fraction.value || 0);
  const by = freezeForm.split_by.value || freezeForm.dataset.splitDefault;
  const items = Number(freezeForm.dataset.items);
  let warning = "";
  if (fraction === 0) {
    warning = "Test fraction 0: every row goes to train and nothing is held out to evaluate on.";
  } else if (fraction >= 0.5) {
    warning = `Test fraction ${fraction}: ${percent(fraction)} of the rows go to test, leaving little to train on.`;
  } else if (by === "item" && items > 0 && items * fraction < 1) {
    warning = `Only ${items} item${items === 1 ? "" : "s"}: split by item puts each item's rows on one side, ` +
      "so the test side will likely be empty (split by response instead).";
  } else if (by === "response" && freezeForm.kind.value === "pairs") {
    warning = "Split by response keeps a pair only when both its answers fall on one side: about " +
      `${percent(fraction * fraction)} of the pairs go to test and ${percent(2 * fraction * (1 - fraction))} are dropped.`;
  }
  splitWarning.textContent = warning;
  splitWarning.hidden = !warning;
}

// "Validation error" alone says nothing: name each field at fault and mark it.
function freezeError(error) {
  freezeForm.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
  const extra = (error.data && error.data.extra) || {};
  const fields = extra.fields || (extra.field ? { [extra.field]: [] } : {});
  const named = Object.entries(fields).map(([name, problems]) => {
    const input = freezeForm.elements[name];
    if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
    return problems.length ? `${name}: ${[].concat(problems).join(" ")}` : "";
  }).filter(Boolean);
  sayFreeze(named.length ? `Not frozen. ${named.join(" · ")}` : `Not frozen: ${error.message}`, "error");
}

freezeForm.kind.addEventListener("change", syncKind);
freezeForm.test_fraction.addEventListener("input", warnSplit);
freezeForm.split_by.addEventListener("change", warnSplit);
syncKind();
const note = sessionStorage.getItem(FREEZE_NOTE);
if (note) {
  sessionStorage.removeItem(FREEZE_NOTE);
  const { text, kind } = JSON.parse(note);
  sayFreeze(text, kind);
}

freezeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const number = (name) => (field(name) && field(name).value !== "" ? Number(field(name).value) : null);
  const body = {
    kind: freezeForm.kind.value,
    annotators: freezeForm.annotators.value.split(",").map((name) => name.trim()).filter(Boolean),
    date_from: freezeForm.date_from.value || null,
    date_to: freezeForm.date_to.value || null,
    seed: number("seed") ?? 0,
    test_fraction: number("test_fraction") ?? 0.1,
    split_by: freezeForm.split_by.value || null,
  };
  if (field("min_agreement")) body.min_agreement = number("min_agreement") ?? 0;
  if (field("min_margin")) body.min_margin = number("min_margin") ?? 0;
  if (field("sft_threshold")) body.sft_threshold = number("sft_threshold");
  if (number("min_trust") !== null) body.min_trust = number("min_trust");
  if (freezeForm.exclude_flagged.checked) body.exclude_flagged = true;
  const sources = freezeForm.querySelector("fieldset.sources");
  if (sources && !sources.hidden) {
    body.sources = [...sources.querySelectorAll("[name=sources]:checked")].map((box) => box.value);
  }
  const button = freezeForm.querySelector("button[type=submit]");
  button.disabled = true;
  sayFreeze("Freezing…");
  try {
    const snapshot = await api("POST", `/api/v1/projects/${slug}/snapshots/`, body);
    // Said again after the reload, next to this button; warnings also stay in the snapshot's row.
    const text = `Snapshot ${snapshot.id}: ${snapshot.n_rows} rows (${snapshot.n_train} train / ${snapshot.n_test} test). ` +
      snapshot.warnings.join(" ");
    sessionStorage.setItem(FREEZE_NOTE, JSON.stringify({ text, kind: snapshot.warnings.length ? "error" : "ok" }));
    window.location.reload();
  } catch (error) {
    freezeError(error);
    button.disabled = false;
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
  say(`Import job ${body.id} started.`, "ok", body);
});

poll();
