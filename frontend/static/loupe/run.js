// Training run page: polls the run's API and redraws status, progress, ETA, curves (plotly) and the log tail;
// Cancel and Resume call the API.
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
  el("run-resume").hidden = !(run.status === "failed" || run.status === "cancelled");
  const log = el("run-log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = run.log_tail;
  if (atBottom) log.scrollTop = log.scrollHeight;
  const last = [...run.metrics].reverse().find((m) => typeof m.tokens_per_second === "number");
  el("run-throughput").textContent = last ? `${Math.round(last.tokens_per_second)} tokens/s at step ${last.step}` : "";
  draw(run.metrics);
}

let timer = null;
async function refresh() {
  clearTimeout(timer);
  try {
    const run = await api("GET", `/api/v1/training-runs/${runId}/`);
    show(run);
    if (run.status === "queued" || run.status === "running") timer = setTimeout(refresh, 2000);
  } catch (error) {
    el("run-message").textContent = error.message;
    timer = setTimeout(refresh, 5000);
  }
}

async function act(action, message) {
  el("run-message").textContent = "";
  try {
    await api("POST", `/api/v1/training-runs/${runId}/${action}/`);
    el("run-message").textContent = message;
  } catch (error) {
    el("run-message").textContent = error.message;
  }
  refresh();
}

el("run-cancel").addEventListener("click", () => act("cancel", "Cancel requested: the run stops after this step."));
el("run-resume").addEventListener("click", () => act("resume", "Queued again: it continues from its last checkpoint."));
refresh();
