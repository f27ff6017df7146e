// Leaderboard page: one bar chart per benchmark (its headline metric per model, in lineage order), plus POPE's
// F1 per setting, drawn with plotly from the same data as the table (the page's JSON, also /api/v1/leaderboard/).

const board = JSON.parse(document.getElementById("leaderboard-data").textContent);
const charts = document.getElementById("leaderboard-charts");

// Every chart's box first, then the plots: a plot drawn before its neighbours exist takes the whole row's width.
for (const benchmark of board.benchmarks) {
  const node = document.createElement("div");
  node.id = `chart-${benchmark.name}`;
  node.className = "chart";
  charts.appendChild(node);
}

function chart(id, title, traces, yTitle) {
  Plotly.newPlot(document.getElementById(id), traces, {
    title: { text: title },
    barmode: "group",
    margin: { t: 40, r: 20, b: 90, l: 55 },
    yaxis: { title: { text: yTitle }, rangemode: "tozero" },
    legend: { orientation: "h", y: -0.35 },
  }, { displayModeBar: false, responsive: true });
}

for (const benchmark of board.benchmarks) {
  const rows = board.rows.filter((row) => benchmark.name in row.results);
  const models = rows.map((row) => row.model);
  const value = (row, key) => row.results[benchmark.name].metrics[key];
  let traces;
  if (benchmark.name === "pope") {
    const settings = [...new Set(rows.flatMap((row) => Object.keys(row.results.pope.metrics)))]
      .filter((key) => key.startsWith("f1_"));
    traces = settings.map((key) => ({ type: "bar", name: key.slice(3), x: models, y: rows.map((r) => value(r, key)) }));
  } else if (benchmark.name === "human_eval") {
    // People's rates per hallucination type next to "any" (the number of answers judged is in the table's run).
    const types = [...new Set(rows.flatMap((row) => Object.keys(row.results.human_eval.metrics)))]
      .filter((key) => key !== "n_answers");
    traces = types.map((key) => ({ type: "bar", name: key, x: models, y: rows.map((r) => value(r, key)) }));
  } else {
    traces = [{ type: "bar", name: benchmark.headline, x: models, y: rows.map((r) => value(r, benchmark.headline)) }];
  }
  const direction = benchmark.lower_is_better ? "lower is better" : "higher is better";
  chart(`chart-${benchmark.name}`, `${benchmark.name}: ${benchmark.headline} (${direction})`, traces, benchmark.headline);
}
