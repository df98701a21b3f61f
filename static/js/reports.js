// Reports chart: data comes from the page's json_script (CSP forbids inline scripts).
(() => {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const canvas = document.getElementById("report-chart");
  if (!canvas || !window.Chart) return;
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.days,
      datasets: [
        { label: "Opened", data: data.opened, backgroundColor: "#60a5fa" },
        { label: "Resolved", data: data.resolved, backgroundColor: "#34d399" },
      ],
    },
    options: { responsive: true, animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
})();
