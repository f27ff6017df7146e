// Training run page: polls the run's API and redraws status, progress, curves and the log tail.
import { api } from "./api.js";

const root = document.getElementById("run");
const runId = root.dataset.run;
const el = (id) => document.getElementById(id);
const CURVES = ["loss", "rewards/margins", "rewards/accuracies"];

function draw(metrics) {
  const traces = CURVES.filter((name) => metrics.some((m) => name in m)).map((name) => ({
    x: metrics.filter((m) => name in m).map((m) => m.step),
    y: metrics.filter((m) => name in m).map((m) => m[name]),
    mode: "lines+markers",
    name,
  }));
  Plotly.react("loss-chart", traces, {
    margin: { t: 30, r: 20, b: 40, l: 50 },
    xaxis: { title: { text: "step" } },
    title: { text: "Training curves" },
  }, { displayModeBar: false, responsive: true });
}

async function refresh() {
  const run = await api("GET", `/api/v1/training-runs/${runId}/`);
  el("run-status").textContent = run.status;
  el("run-status").className = `badge ${run.status}`;
  el("run-step").textContent = run.step;
  el("run-max").textContent = run.max_steps;
  el("run-progress").value = run.progress;
  el("run-log").textContent = run.log_tail;
  draw(run.metrics);
  if (run.status === "queued" || run.status === "running") setTimeout(refresh, 2000);
}
refresh();
