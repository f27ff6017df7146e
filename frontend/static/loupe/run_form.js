// Run-creation form: shows the chosen method's description and settings, and fills in its defaults.
const methods = JSON.parse(document.getElementById("training-methods").textContent);
const select = document.getElementById("run-method");
const config = document.getElementById("run-config");
const description = document.getElementById("method-description");
const settingsBody = document.querySelector("#method-settings tbody");

function chosen() {
  return methods.find((m) => m.method === select.value);
}

function show() {
  const method = chosen();
  if (!method) return;
  description.textContent = method.description;
  settingsBody.replaceChildren(
    ...method.settings.map((s) => {
      const row = document.createElement("tr");
      for (const text of [s.name, JSON.stringify(s.default), s.help]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }),
  );
}

document.getElementById("fill-defaults").addEventListener("click", () => {
  const method = chosen();
  if (method) config.value = JSON.stringify(method.defaults, null, 2);
});
select.addEventListener("change", show);
show();
