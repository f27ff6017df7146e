// Training run page: polls the run's API and redraws status, progress, ETA, a failed run's cause, curves
// (plotly) and the log tail; Cancel and Resume (or Start again, without a checkpoint) call the API.
import { api } from "./api.js";

const root = document.getElementById("run");
const runId = root.dataset.run;
const el = (id) => document.getElementById(id);

// Which logged metrics each chart shows (a chart with none of them logged stays hidden).
const CHARTS = {
  "chart-loss": { title: "Loss", metrics: ["loss", "eval_loss", "loss/policy", "loss/value"] },
  "chart-rewards": {
    title: "Rewards",
    metrics: [
      "rewards/chosen", "rewards/rejected", "rewards/margins", "eval_rewards/margins",
      "objective/scores", "objective/rlhf_reward", "reward", "best_score", "mean_score",
    ],
  },
  "chart-accuracy": {
    title: "Preference accuracy",
    metrics: ["rewards/accuracies", "eval_rewards/accuracies", "mean_token_accuracy", "eval_mean_token_accuracy"],
  },
  "chart-kl": { title: "KL to the reference", metrics: ["kl", "objective/kl", "kl_coef"] },
};

function draw(metrics) {
  for (const [id, chart] of Object.entries(CHARTS)) {
    const traces = chart.metrics
      .filter((name) => metrics.some((m) => typeof m[name] === "number"))
      .map((name) => {
        const rows = metrics.filter((m) => typeof m[name] === "number");
        return { x: rows.map((m) => m.step), y: rows.map((m) => m[name]), mode: "lines+markers", name };
      });
    const node = el(id);
    node.hidden = traces.length === 0;
    if (!traces.length) continue;
    Plotly.react(node, traces, {
      margin: { t: 36, r: 20, b: 70, l: 55 },
      xaxis: { title: { text: "step" } },
      title: { text: chart.title },
      legend: { orientation: "h", y: -0.3 },
    }, { displayModeBar: false, responsive: true });
  }
}

function duration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function show(run) {
  el("run-status").textContent = run.status + (run.cancel_requested && run.status === "running" ? " (stopping)" : "");
  el("run-status").className = `badge ${run.status}`;
  el("run-step").textContent = run.step;
  el("run-max").textContent = run.max_steps;
  el("run-progress").value = run.progress;
  el("run-eta").textContent = run.eta_seconds == null ? "" : `about ${duration(run.eta_seconds)} left`;
  el("run-cancel").hidden = !(run.status === "queued" || run.status === "running") || run.cancel_requested;
  const ended = run.status === "failed" || run.status === "cancelled";
  // Resume is offered only with a checkpoint to continue from; without one the run can only start again.
  el("run-resume").hidden = !(ended && run.last_checkpoint);
  root.querySelector(".run-checkpoint").textContent = run.last_checkpoint || "";
  el("run-restart").hidden = !(ended && !run.last_checkpoint);
  el("run-restart-note").hidden = el("run-restart").hidden;
  el("run-cause").hidden = !run.failure_cause;
  el("run-cause-text").textContent = run.failure_cause || "";
  // A message about an action holds while the run is in the state the action left it in (a "Cancel
  // requested" note must not stay beside a run that has since been cancelled or failed).
  if (note.status !== null && note.status !== run.status) say("");
  const log = el("run-log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = run.log_tail;
  if (atBottom) log.scrollTop = log.scrollHeight;
  const last = [...run.metrics].reverse().find((m) => typeof m.tokens_per_second === "number");
  el("run-throughput").textContent = last ? `${Math.round(last.tokens_per_second)} tokens/s at step ${last.step}` : "";
  draw(run.metrics);
}

// The message beside the buttons and the run status it describes (null: an error, cleared by the next
// successful refresh).
const note = { status: null, error: false };
function say(text, { status = null, error = false } = {}) {
  el("run-message").textContent = text;
  el("run-message").classList.toggle("error", error);
  note.status = text ? status : null;
  note.error = Boolean(text) && error;
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  try {
    const run = await api("GET", `/api/v1/training-runs/${runId}/`);
    if (note.error) say("");
    show(run);
    if (run.status === "queued" || run.status === "running") timer = setTimeout(refresh, 2000);
  } catch (error) {
    say(error.message, { error: true });
    timer = setTimeout(refresh, 5000);
  }
}

async function act(action, message) {
  say("");
  try {
    const run = await api("POST", `/api/v1/training-runs/${runId}/${action}/`);
    say(message(run), { status: run.status });
  } catch (error) {
    say(error.message, { error: true });
  }
  refresh();
}

el("run-cancel").addEventListener("click", () =>
  act("cancel", (run) => (run.status === "cancelled" ? "Cancelled." : "Cancel requested: the run stops after this step.")),
);
el("run-resume").addEventListener("click", () =>
  act("resume", () => `Queued again: it continues from ${root.querySelector(".run-checkpoint").textContent}.`),
);
el("run-restart").addEventListener("click", () => act("resume", () => "Queued again: it starts from the beginning."));
refresh();
