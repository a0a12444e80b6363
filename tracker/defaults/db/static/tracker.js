// Fold the (long) column descriptions of a table page into a <details> the reader can open.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("dl.column-descriptions").forEach((dl) => {
    const details = document.createElement("details");
    details.className = "column-descriptions";
    const summary = document.createElement("summary");
    summary.textContent = `What the ${dl.querySelectorAll("dt").length} columns mean`;
    dl.parentNode.insertBefore(details, dl);
    details.append(summary, dl);
  });
});
