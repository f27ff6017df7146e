// Dashboard: upload an import through the REST API and show what it did (or the line it refused).
import { apiCall } from "./api.js";

const form = document.getElementById("import-form");
const status = document.getElementById("import-status");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  for (const name of ["images", "image"]) {
    const file = data.get(name);
    if (file && file.size === 0) data.delete(name);
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  status.className = "status";
  status.textContent = "Importing…";
  try {
    const { data: report } = await apiCall("POST", form.dataset.url, data);
    const parts = Object.entries(report || {}).map(([key, value]) => `${key}: ${value}`);
    status.className = "status ok";
    status.textContent = `Imported. ${parts.join(", ")}. Reload to see the new tasks.`;
  } catch (error) {
    status.className = "status error";
    const where = error.data && error.data.extra && error.data.extra.line ? ` (line ${error.data.extra.line})` : "";
    status.textContent = `${error.message}${where}`;
  } finally {
    button.disabled = false;
  }
});
