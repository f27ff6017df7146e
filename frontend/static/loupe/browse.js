// The data browser's keys: j / k move to the next / previous row, Enter opens it, / goes to the search box.
const rows = Array.from(document.querySelectorAll("tr.browse-row"));
let current = -1;

function select(index) {
  if (!rows.length) return;
  current = Math.max(0, Math.min(rows.length - 1, index));
  rows.forEach((row, k) => row.classList.toggle("current", k === current));
  rows[current].scrollIntoView({ block: "nearest" });
  rows[current].querySelector("a.open")?.focus({ preventScroll: true });
}

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
  if (event.key === "j") {
    event.preventDefault();
    select(current + 1);
  } else if (event.key === "k") {
    event.preventDefault();
    select(current < 0 ? 0 : current - 1);
  } else if (event.key === "Enter" && current >= 0 && document.activeElement?.tagName !== "A") {
    event.preventDefault();
    window.location.assign(rows[current].dataset.href);
  } else if (event.key === "/") {
    event.preventDefault();
    document.querySelector("#browse-filters input[name=q]")?.focus();
  }
});

// A click anywhere on a row (not on its link or a selection of text) opens it too.
for (const [index, row] of rows.entries()) {
  row.addEventListener("click", (event) => {
    if (event.target.closest("a") || window.getSelection()?.toString()) return;
    select(index);
    window.location.assign(row.dataset.href);
  });
  row.querySelector("a.open")?.addEventListener("focus", () => {
    current = index;
    rows.forEach((other, k) => other.classList.toggle("current", k === index));
  });
}
