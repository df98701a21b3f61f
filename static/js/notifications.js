// The bell: unread count, dropdown, live updates over /ws/notifications/ and desktop notifications.
// Socket events carry ids only; titles come from /notifications/summary/ (JSON) and are shown as text
// (textContent, the Notification API), never as HTML. The dropdown is a server-rendered fragment.
// Desktop notifications: permission is asked only when the person clicks "Turn on desktop
// notifications", and one is shown only while this tab is hidden.
(() => {
  const root = document.querySelector("[data-notifications]");
  if (!root) return;
  const badge = root.querySelector("[data-bell-count]");
  const menu = root.querySelector("[data-bell-menu]");
  const summaryUrl = root.dataset.summaryUrl;
  const menuUrl = root.dataset.menuUrl;
  let lastId = 0;
  let loaded = false; // announce only what arrived after a first successful look
  let socket = null;
  let retry = 1000;
  let pinger = null;

  function setCount(n) {
    badge.textContent = n > 99 ? "99+" : String(n);
    badge.hidden = n <= 0;
    root.querySelector("summary").setAttribute("aria-label", n > 0 ? `Notifications, ${n} unread` : "Notifications");
  }

  async function summary(after) {
    const response = await fetch(`${summaryUrl}${after ? `?after=${after}` : ""}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(String(response.status));
    return response.json();
  }

  function remember(latest) {
    for (const item of latest) lastId = Math.max(lastId, item.id);
  }

  function desktopAllowed() {
    return "Notification" in window && Notification.permission === "granted";
  }

  function showDesktop(item) {
    if (!desktopAllowed() || !document.hidden) return;
    const note = new Notification(item.title, { body: item.body || "", tag: `wacrm-notification-${item.id}` });
    note.onclick = () => {
      window.focus();
      // Paths on this site only (the server keeps nothing else as a notification's link).
      if (typeof item.url === "string" && item.url.startsWith("/") && !item.url.startsWith("//")) {
        window.location.assign(item.url);
      }
      note.close();
    };
  }

  async function refresh(announce) {
    try {
      const data = await summary(announce && loaded ? lastId : 0);
      setCount(data.unread);
      if (announce && loaded) data.latest.filter((item) => !item.read).reverse().forEach(showDesktop);
      remember(data.latest);
      loaded = true;
      if (root.open) loadMenu();
    } catch (_) { /* the next event or page load catches up */ }
  }

  function loadMenu() {
    if (window.htmx) {
      window.htmx.ajax("GET", menuUrl, { target: menu, swap: "innerHTML" });
    }
  }

  // The fragment's own count (after "mark all read" in it) keeps the badge right.
  menu.addEventListener("htmx:afterSwap", () => {
    const list = menu.querySelector("[data-unread]");
    if (list) setCount(parseInt(list.dataset.unread, 10) || 0);
    wirePermissionButtons(menu);
  });
  root.addEventListener("toggle", () => { if (root.open) loadMenu(); });
  document.addEventListener("click", (event) => {
    if (root.open && !root.contains(event.target)) root.open = false;
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && root.open) { root.open = false; root.querySelector("summary").focus(); }
  });

  function wirePermissionButtons(scope) {
    if (!("Notification" in window)) return;
    scope.querySelectorAll("[data-desktop-permission]").forEach((button) => {
      button.hidden = Notification.permission !== "default";
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.addEventListener("click", async () => {
        try { await Notification.requestPermission(); } catch (_) { /* older browsers: callback form */ }
        document.querySelectorAll("[data-desktop-permission]").forEach((b) => { b.hidden = Notification.permission !== "default"; });
      });
    });
  }
  wirePermissionButtons(document);

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/notifications/`);
    socket.addEventListener("open", () => {
      retry = 1000;
      clearInterval(pinger);
      pinger = setInterval(() => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
      }, 25000);
    });
    socket.addEventListener("message", (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (_) { return; }
      if (event.type === "notification.created") refresh(true);
      else if (event.type === "notification.read") refresh(false);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(pinger);
      if (event.code === 4401) return; // signed out: the next page load asks for a sign-in
      setTimeout(() => { refresh(true); connect(); }, retry);
      retry = Math.min(retry * 2, 30000);
    });
  }

  refresh(false);
  connect();
})();
