// What the customer learns from what a person does in the thread, and the thread's images.
// - Read: opening a conversation's URL marks nothing read (a link preview or a prefetch would give the
//   customer blue ticks). This asks for it, by POST, when the thread is on a visible page: when it is
//   shown, when the tab comes back into view, and when a new customer message appears in it.
// - Typing: while an agent writes a reply (not a private note) in the composer, at most one POST per
//   TYPING_MS; the server sends Meta's read + "typing…" for the latest customer message (and throttles too).
// - Images open larger in a dialog (a click with a modifier key still opens the file in a new tab).
(() => {
  "use strict";
  const TYPING_MS = 20000;
  const token = document.querySelector('meta[name="csrf-token"]');
  if (!token || !document.getElementById("inbox")) return;
  const csrf = token.content;

  let lastRead = "";
  const typedAt = new Map();

  function post(url) {
    return fetch(url, {
      method: "POST",
      headers: { "X-CSRFToken": csrf, "HX-Request": "true" },
      credentials: "same-origin",
    }).catch(() => { /* offline: the next change asks again */ });
  }
  function thread() {
    const el = document.getElementById("thread");
    const id = el ? Number(el.dataset.conversation) : 0;
    return id ? { el, id } : null;
  }
  function lastInbound(el) {
    const ids = Array.from(el.querySelectorAll(".msg.in")).map((m) => Number(m.dataset.id) || 0);
    return ids.length ? Math.max(...ids) : 0;
  }

  // --- read ---------------------------------------------------------------------------------------
  let readTimer = null;
  function markReadSoon() {
    clearTimeout(readTimer);
    // Several changes in a row (a thread swapped in, then its messages) make one request.
    readTimer = setTimeout(markRead, 150);
  }
  function markRead() {
    if (document.visibilityState !== "visible") return;
    const t = thread();
    if (!t) return;
    const key = `${t.id}:${lastInbound(t.el)}`;
    if (key === lastRead) return;
    lastRead = key;
    // The server's conversation.read event updates the list's badge and the tab counts.
    post(`/inbox/c/${t.id}/read/`);
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") markReadSoon();
  });
  const pane = document.getElementById("thread-pane");
  if (pane) {
    new MutationObserver((records) => {
      const relevant = records.some((r) => Array.from(r.addedNodes).some(
        (n) => n.nodeType === 1 && (n.id === "thread" || n.matches(".msg.in") || n.querySelector("#thread, .msg.in"))
      ));
      if (relevant) markReadSoon();
    }).observe(pane, { childList: true, subtree: true });
  }
  markReadSoon();

  // --- typing -------------------------------------------------------------------------------------
  document.addEventListener("input", (e) => {
    if (!e.target || e.target.id !== "composer-text" || !e.target.value.trim()) return;
    const form = e.target.closest("#composer");
    const mode = form && form.querySelector('input[name="mode"]:checked');
    if (!form || (mode && mode.value !== "reply") || form.dataset.windowOpen === "0") return;
    const id = Number(form.dataset.conversation);
    const now = Date.now();
    if (!id || now - (typedAt.get(id) || 0) < TYPING_MS) return;
    typedAt.set(id, now);
    post(`/inbox/c/${id}/typing/`);
  });

  // --- images -------------------------------------------------------------------------------------
  let dialog = null;
  function lightbox() {
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.className = "lightbox";
    dialog.setAttribute("aria-label", "Image");
    dialog.innerHTML = '<form method="dialog"><button type="submit" class="btn small lightbox-close">Close</button></form><img alt="">';
    dialog.addEventListener("click", (e) => { if (e.target === dialog || e.target.tagName === "IMG") dialog.close(); });
    document.body.append(dialog);
    return dialog;
  }
  document.addEventListener("click", (e) => {
    const link = e.target.closest && e.target.closest("a[data-enlarge]");
    if (!link || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    const box = lightbox();
    const img = box.querySelector("img");
    const small = link.querySelector("img");
    img.src = link.href;
    img.alt = small ? small.alt : "";
    box.showModal();
  });
})();
