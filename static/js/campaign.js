// A campaign's page: live counts and progress from `campaign.progress` events on the inbox WebSocket
// (sent to the workspace's owners, admins and supervisors: conversations/events.py publish()).
(() => {
  "use strict";
  const root = document.querySelector("[data-campaign]");
  if (!root) return;
  const id = Number(root.dataset.campaign);
  const LABELS = {
    draft: "Draft", scheduled: "Scheduled", running: "Running", paused: "Paused",
    completed: "Completed", cancelled: "Cancelled",
  };
  let backoff = 1000;
  let pingTimer = null;

  function show(event) {
    for (const el of root.querySelectorAll("[data-count]")) {
      const name = el.dataset.count;
      if (!(name in event)) continue;
      el.textContent = name === "status" ? (LABELS[event.status] || event.status) : String(event[name] ?? "");
    }
    const bar = root.querySelector("[data-progress]");
    if (bar && event.total) {
      const done = event.total - (event.pending || 0) - (event.queued || 0);
      bar.value = Math.round((100 * done) / event.total);
      bar.textContent = `${bar.value} %`;
    }
    // The controls depend on the status: reload them when it changes.
    if (root.dataset.status && root.dataset.status !== event.status) location.reload();
    root.dataset.status = event.status;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/inbox/`);
    socket.addEventListener("open", () => {
      backoff = 1000;
      clearInterval(pingTimer);
      pingTimer = setInterval(() => socket.send(JSON.stringify({ type: "ping" })), 25000);
    });
    socket.addEventListener("message", (e) => {
      const event = JSON.parse(e.data);
      if (event.type === "campaign.progress" && event.campaign === id) show(event);
    });
    socket.addEventListener("close", (e) => {
      clearInterval(pingTimer);
      if (e.code === 4401) return;
      setTimeout(connect, Math.min(backoff, 30000));
      backoff = Math.min(backoff * 2, 30000);
    });
  }
  connect();
})();
