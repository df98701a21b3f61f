// The inbox's live layer: one WebSocket per tab, fragments fetched over HTTP, optimistic sending.
// Server events carry ids only; every fragment is fetched from views that check visibility again.
(() => {
  "use strict";
  const root = document.getElementById("inbox");
  if (!root) return;

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const me = Number(root.dataset.user);
  const baseTitle = document.title.replace(/^\(\d+\) /, "");
  let lastSeq = Number(root.dataset.seq || 0);
  const seenSeq = new Set();
  let socket = null;
  let backoff = 1000;
  let everConnected = false;
  let pingTimer = null;

  const $ = (sel, el = document) => el.querySelector(sel);
  const $$ = (sel, el = document) => Array.from(el.querySelectorAll(sel));
  const openId = () => { const t = $("#thread"); return t ? Number(t.dataset.conversation) : null; };
  const listQuery = () => { const rows = $("#rows"); return rows ? rows.dataset.qs || "" : ""; };

  async function fetchHtml(url) {
    const response = await fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" });
    if (response.status === 204 || response.status === 404) return "";
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.text();
  }
  // Overlapping fetches of one thing (a row, a pane, a bubble) come from events in quick succession: only
  // the newest one's answer is drawn (an older answer arriving last would show a state already left).
  // `undefined` for an answer a newer fetch of the same key overtook.
  const newestFetches = new Map();
  async function fetchNewest(key, url) {
    const ticket = (newestFetches.get(key) || 0) + 1;
    newestFetches.set(key, ticket);
    try {
      const html = await fetchHtml(url);
      return newestFetches.get(key) === ticket ? html : undefined;
    } finally {
      if (newestFetches.get(key) === ticket) newestFetches.delete(key);
    }
  }
  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content;
  }
  function activate(el) { if (window.htmx) window.htmx.process(el); }
  function setStatus(text, kind) {
    const el = $("#conn-status");
    if (!el) return;
    el.textContent = text;
    el.dataset.kind = kind || "";
  }

  // --- the socket ---------------------------------------------------------------------------------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/inbox/`);
    socket.addEventListener("open", () => {
      backoff = 1000;
      setStatus("", "ok");
      if (lastSeq) socket.send(JSON.stringify({ type: "resume", after: lastSeq }));
      if (everConnected) refreshList();
      everConnected = true;
      sendView();
      clearInterval(pingTimer);
      pingTimer = setInterval(() => send({ type: "ping" }), 25000);
    });
    socket.addEventListener("message", (e) => handle(JSON.parse(e.data)));
    socket.addEventListener("close", (e) => {
      clearInterval(pingTimer);
      if (e.code === 4401) { setStatus("Signed out: reload to sign in again.", "error"); return; }
      // Exponential backoff with jitter, 1 s up to 30 s.
      const wait = Math.min(backoff, 30000) * (0.8 + Math.random() * 0.4);
      setStatus(`Connection lost. Reconnecting in ${Math.round(wait / 1000)} s…`, "warn");
      setTimeout(connect, wait);
      backoff = Math.min(backoff * 2, 30000);
    });
  }
  function send(obj) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj)); }
  function sendView() { send({ type: "view", conversation: openId() }); }
  window.inboxSocket = { close: () => socket && socket.close(), state: () => socket && socket.readyState };

  function handle(event) {
    if (event.seq) {
      if (seenSeq.has(event.seq)) return;
      seenSeq.add(event.seq);
      lastSeq = Math.max(lastSeq, event.seq);
    }
    switch (event.type) {
      case "hello": if (!lastSeq) lastSeq = event.seq; break;
      case "resync": refreshList(); refreshThread(); break;
      case "presence": showViewers(event); break;
      case "message.created": onMessageCreated(event); break;
      case "message.updated": onMessageUpdated(event); break;
      default:
        if (event.type && event.type.startsWith("conversation.")) onConversation(event);
    }
  }

  // --- list ---------------------------------------------------------------------------------------
  // Events come in bursts (the last minute replayed when the page loads, many customers writing at
  // once), several per conversation: rows and counts are fetched once per burst, not once per event.
  const ROW_BURST = 20;
  const pendingRows = new Map(); // conversation id -> move to top; ordered by each one's latest event
  let rowsTimer = null;
  let countsTimer = null;
  function refreshRow(id, { moveToTop = false } = {}) {
    const top = moveToTop || pendingRows.get(id) || false;
    pendingRows.delete(id);
    pendingRows.set(id, top);
    if (!rowsTimer) rowsTimer = setTimeout(flushRows, 50);
  }
  async function flushRows() {
    rowsTimer = null;
    const batch = [...pendingRows];
    pendingRows.clear();
    if (batch.length > ROW_BURST) { refreshList(); return; }
    const query = listQuery();
    const answers = await Promise.all(
      batch.map(([id]) => fetchNewest(`row-${id}`, `/inbox/c/${id}/row/?${query}`).catch(() => undefined)));
    // The list was redrawn for another tab or filter meanwhile, and is current: these answers were for
    // the old one (an empty one would have removed a row the new list rightly shows).
    if (listQuery() !== query) return;
    batch.forEach(([id, moveToTop], i) => { if (answers[i] !== undefined) placeRow(id, answers[i], moveToTop); });
  }
  function placeRow(id, html, moveToTop) {
    const existing = document.getElementById(`conv-${id}`);
    const rows = $("#rows");
    if (!rows) return;
    if (!html) { if (existing) existing.remove(); return; }
    const node = fragment(html).firstElementChild;
    if (id === openId()) node.classList.add("current");
    if (existing && !moveToTop) existing.replaceWith(node);
    else {
      if (existing) existing.remove();
      const empty = $(".empty", rows);
      if (empty) empty.remove();
      rows.prepend(node);
    }
    activate(node);
  }
  async function refreshList() {
    const html = await fetchNewest("list", `/inbox/list/?${listQuery()}`);
    const pane = $("#list-pane");
    if (html && pane) { pane.innerHTML = html; activate(pane); markCurrent(); }
    refreshCounts();
  }
  function refreshCounts() {
    if (!countsTimer) countsTimer = setTimeout(loadCounts, 50);
  }
  async function loadCounts() {
    countsTimer = null;
    try {
      const response = await fetch("/inbox/counts/", { credentials: "same-origin" });
      const counts = await response.json();
      for (const [tab, n] of Object.entries(counts)) {
        const el = $(`[data-count="${tab}"]`);
        if (el) el.textContent = n ? String(n) : "";
      }
      const unread = counts.mine + counts.unassigned;
      document.title = unread ? `(${unread}) ${baseTitle}` : baseTitle;
    } catch (_) { /* offline: the next event retries */ }
  }
  function markCurrent() {
    $$("#rows .row").forEach((row) => row.classList.toggle("current", Number(row.dataset.id) === openId()));
  }

  // --- thread -------------------------------------------------------------------------------------
  function lastMessageId() {
    const ids = $$("#messages .msg").map((m) => Number(m.dataset.id)).filter(Boolean);
    return ids.length ? Math.max(...ids) : 0;
  }
  function scrollToEnd() { const s = $("#messages-scroll"); if (s) s.scrollTop = s.scrollHeight; }
  async function appendNewMessages(conversation) {
    const list = $("#messages");
    if (!list) return;
    const html = await fetchHtml(`/inbox/c/${conversation}/messages/?after=${lastMessageId()}`);
    const nearEnd = isNearEnd();
    for (const node of Array.from(fragment(html).children)) {
      if (!node.id || document.getElementById(node.id)) continue;
      // Our own message, stored before its POST answered: it takes the optimistic bubble's place.
      const key = node.dataset.storedKey;
      const pending = key && document.querySelector(`.msg.pending[data-key="${CSS.escape(key)}"]`);
      if (pending) pending.replaceWith(node); else list.append(node);
      activate(node);
    }
    if (nearEnd) scrollToEnd();
  }
  function isNearEnd() {
    const s = $("#messages-scroll");
    return !s || s.scrollHeight - s.scrollTop - s.clientHeight < 200;
  }
  async function refreshThread() {
    const id = openId();
    if (!id) return;
    const html = await fetchNewest("thread", `/inbox/c/${id}/`);
    const pane = $("#thread-pane");
    if (html && pane && id === openId()) { pane.innerHTML = html; activate(pane); setupThread(); }
  }
  async function refreshHead(id) {
    const html = await fetchNewest("head", `/inbox/c/${id}/head/`);
    const head = $("#thread-head");
    // Another conversation opened meanwhile: this head is not its.
    if (html && head && id === openId()) { head.innerHTML = html; activate(head); }
  }

  function onMessageCreated(event) {
    refreshRow(event.conversation, { moveToTop: event.kind !== "system" && event.kind !== "note" });
    if (event.conversation === openId()) {
      const form = $("#composer");
      // The customer wrote: a closed 24-hour window opens again, so the composer offers replies.
      if (event.direction === "in" && form && form.dataset.windowOpen === "0") refreshThread();
      else appendNewMessages(event.conversation);
    }
    if (event.direction === "in") notify(event);
    refreshCounts();
  }
  // Statuses come in quick succession (sent, delivered, read): the newest fetch of a message draws it,
  // into the bubble on the page when it answers (one taken before the wait may have been replaced).
  async function onMessageUpdated(event) {
    refreshRow(event.conversation);
    if (!document.getElementById(`msg-${event.message}`)) return;
    const html = await fetchNewest(`msg-${event.message}`, `/inbox/m/${event.message}/`);
    const bubble = document.getElementById(`msg-${event.message}`);
    if (html && bubble) { const node = fragment(html).firstElementChild; bubble.replaceWith(node); activate(node); }
  }
  function onConversation(event) {
    refreshRow(event.conversation);
    if (event.conversation === openId()) {
      refreshHead(event.conversation);
      if (event.type === "conversation.bot" || event.type === "conversation.assigned") appendNewMessages(event.conversation);
      if (event.type === "conversation.contact") refreshContact(event.conversation);
    }
    refreshCounts();
  }

  // --- contact panel ------------------------------------------------------------------------------
  // Someone changed the contact: redraw the panel, unless this agent is working in it (a form open or
  // the focus inside), where a redraw would throw their input or their place away.
  async function refreshContact(id) {
    const pane = $("#contact-pane");
    const busy = () => !pane || $(".cf-form", pane) || pane.contains(document.activeElement);
    if (busy()) return;
    const html = await fetchNewest("contact", `/inbox/c/${id}/contact/`);
    // Asked again: the agent may have started editing while the panel was being fetched.
    if (html && id === openId() && !busy()) { pane.innerHTML = html; activate(pane); }
  }
  function setContactOpen(open) {
    const pane = $("#contact-pane");
    if (!pane) return;
    pane.classList.toggle("open", open);
    $$(".thread-head [data-toggle-contact]").forEach((b) => b.setAttribute("aria-expanded", String(open)));
    // As an overlay (narrow screens) the panel takes the focus, and gives it back when closed.
    if (open) pane.focus();
    else { const toggle = $(".thread-head [data-toggle-contact]"); if (toggle) toggle.focus(); }
  }

  function showViewers(event) {
    if (event.conversation !== openId()) return;
    const el = $("#viewers");
    if (!el) return;
    const others = event.viewers.filter((v) => v.id !== me);
    el.textContent = others.length ? `Also viewing: ${others.map((v) => v.name).join(", ")}` : "";
  }

  // --- notifications ------------------------------------------------------------------------------
  async function notify(event) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    if (document.visibilityState === "visible" && event.conversation === openId()) return;
    // Only conversations assigned to me notify: the "mine" row exists only for those.
    const response = await fetch(`/inbox/c/${event.conversation}/row/?tab=mine&status=any`, { headers: { "HX-Request": "true" } });
    if (response.status !== 200) return;
    const name = fragment(await response.text()).querySelector(".name");
    const n = new Notification(`New message from ${name ? name.textContent : "a customer"}`, { tag: `conv-${event.conversation}` });
    n.onclick = () => { window.focus(); location.href = `/inbox/c/${event.conversation}/`; };
  }
  document.addEventListener("click", () => {
    if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
  }, { once: true });

  // --- composer -----------------------------------------------------------------------------------
  const LIMITS = { image: 5 * 1024 * 1024, video: 16 * 1024 * 1024, audio: 16 * 1024 * 1024, document: 100 * 1024 * 1024, sticker: 500 * 1024 };
  function kindOf(file) {
    if (file.type === "image/webp") return "sticker";
    if (file.type.startsWith("image/")) return "image";
    if (file.type.startsWith("video/")) return "video";
    if (file.type.startsWith("audio/")) return "audio";
    return "document";
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  }
  // An icon of the sprite (static/icons/sprite.svg), as the templates draw them ({% icon %}).
  function icon(name) {
    const meta = document.querySelector('meta[name="icon-sprite"]');
    const sprite = meta ? meta.content : "/static/icons/sprite.svg";
    return `<svg class="icon" aria-hidden="true" focusable="false"><use href="${escapeHtml(sprite)}#${name}"></use></svg>`;
  }
  function escapeHtml(s) { return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

  function mode() { const r = $('#composer input[name="mode"]:checked'); return r ? r.value : "reply"; }

  async function submitComposer(form, retryKey, retryText) {
    const text = retryText !== undefined ? retryText : $("#composer-text").value;
    const fileInput = $("#composer-file");
    const file = fileInput && fileInput.files[0];
    const m = mode();
    const error = $("#composer-error");
    error.hidden = true;
    if (m === "template") return submitTemplate(form);
    if (!text.trim() && !file) return;
    if (text.length > Number(form.dataset.max)) { showError(`At most ${form.dataset.max} characters.`); return; }
    if (file && m === "reply") {
      const kind = kindOf(file);
      if (file.size > LIMITS[kind]) { showError(`WhatsApp allows ${kind} files up to ${Math.round(LIMITS[kind] / 1024 / 1024 * 10) / 10} MB.`); return; }
    }
    const key = retryKey || uuid();
    const conversation = form.dataset.conversation;
    const list = $("#messages");
    let bubble = document.querySelector(`[data-key="${key}"]`);
    if (!bubble) {
      bubble = document.createElement("li");
      bubble.className = `msg out pending ${m === "note" ? "type-note" : "type-text"}`;
      bubble.dataset.key = key;
      bubble.innerHTML = `<div class="bubble">${m === "note" ? '<span class="note-label">Private note</span>' : ""}<p class="text">${escapeHtml(text)}${file ? ` ${icon("attach")} ${escapeHtml(file.name)}` : ""}</p><span class="meta"><span class="tick" role="img" aria-label="Sending">${icon("clock")}</span></span></div>`;
      list.append(bubble);
      scrollToEnd();
    } else {
      bubble.classList.remove("send-failed");
      const f = bubble.querySelector(".send-failure"); if (f) f.remove();
    }
    if (retryText === undefined) {
      $("#composer-text").value = "";
      updateCounter();
      if (fileInput) { fileInput.value = ""; $("#composer-file-name").textContent = ""; }
    }
    const body = new FormData();
    body.append("text", text);
    body.append("idempotency_key", key);
    if (file) body.append("file", file);
    const url = m === "note" ? `/inbox/c/${conversation}/note/` : `/inbox/c/${conversation}/send/`;
    try {
      const response = await fetch(url, { method: "POST", body, headers: { "X-CSRFToken": csrf, "HX-Request": "true" }, credentials: "same-origin" });
      if (!response.ok) {
        let message = `Could not send (HTTP ${response.status}).`;
        try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
        if (response.status >= 400 && response.status < 500) { bubble.remove(); showError(message); return; }
        throw new Error(message);
      }
      const node = fragment(await response.text()).firstElementChild;
      const already = node && document.getElementById(node.id);
      if (already) bubble.remove(); else { bubble.replaceWith(node); activate(node); }
      refreshRow(Number(conversation), { moveToTop: true });
    } catch (err) {
      // Network trouble: keep the bubble with its key; Retry resends with the same key, so the server
      // stores the message at most once.
      bubble.classList.add("send-failed");
      const failure = document.createElement("div");
      failure.className = "send-failure";
      failure.setAttribute("role", "alert");
      failure.innerHTML = 'Not sent. <button type="button" class="btn small">Retry</button>';
      failure.querySelector("button").addEventListener("click", () => submitComposer(form, key, text));
      bubble.querySelector(".bubble").append(failure);
    }
  }
  function showError(message) { const e = $("#composer-error"); e.textContent = message; e.hidden = false; }

  function updateCounter() {
    const ta = $("#composer-text"), counter = $("#composer-counter"), form = $("#composer");
    if (!ta || !counter) return;
    counter.textContent = `${ta.value.length} / ${form.dataset.max}`;
    counter.classList.toggle("over", ta.value.length > Number(form.dataset.max) - 100);
  }

  function tickWindow() {
    const el = $("#window-left");
    if (!el) return;
    const left = new Date(el.dataset.closes).getTime() - Date.now();
    if (left <= 0) { refreshThread(); return; }
    const h = Math.floor(left / 3600000), m = Math.floor((left % 3600000) / 60000);
    el.textContent = h ? `${h} h ${m} min` : `${m} min`;
  }
  setInterval(tickWindow, 30000);

  // Saved replies: typing "/" at the start of a word opens the menu.
  let cannedItems = [], cannedIndex = 0;
  async function updateCanned() {
    const ta = $("#composer-text"), menu = $("#canned-menu");
    if (!ta || !menu) return;
    const match = /(^|\s)\/([\w-]*)$/.exec(ta.value.slice(0, ta.selectionStart));
    if (!match) { menu.hidden = true; return; }
    // With the open conversation, the server fills the replies' {{variables}} for its contact and for us.
    const conversation = ($("#composer") || {}).dataset?.conversation || "";
    const response = await fetch(`/inbox/canned/?q=${encodeURIComponent(match[2])}&conversation=${encodeURIComponent(conversation)}`, { credentials: "same-origin" });
    cannedItems = (await response.json()).results;
    cannedIndex = 0;
    renderCanned();
  }
  function renderCanned() {
    const menu = $("#canned-menu");
    menu.innerHTML = cannedItems.map((c, i) => `<li role="option" id="canned-${i}" aria-selected="${i === cannedIndex}" data-i="${i}"><strong>/${escapeHtml(c.shortcut)}</strong> ${escapeHtml(c.title || c.text.slice(0, 60))}</li>`).join("");
    menu.hidden = cannedItems.length === 0;
    $("#composer-text").setAttribute("aria-activedescendant", cannedItems.length ? `canned-${cannedIndex}` : "");
  }
  function pickCanned(i) {
    const ta = $("#composer-text"), item = cannedItems[i];
    if (!item) return;
    const before = ta.value.slice(0, ta.selectionStart).replace(/\/[\w-]*$/, "");
    ta.value = before + item.text + ta.value.slice(ta.selectionStart);
    $("#canned-menu").hidden = true;
    updateCounter();
    ta.focus();
  }

  function setupThread() {
    const form = $("#composer");
    markCurrent();
    sendView();
    scrollToEnd();
    tickWindow();
    if (!form || form.dataset.ready) return;
    form.dataset.ready = "1";
    const ta = $("#composer-text");
    form.addEventListener("submit", (e) => {
      // The template picker's own form sits inside the composer: its submit event bubbles up here
      // and must not submit the template a second time.
      if (e.target !== form) return;
      e.preventDefault();
      submitComposer(form);
    });
    ta.addEventListener("keydown", (e) => {
      const menu = $("#canned-menu");
      if (menu && !menu.hidden) {
        if (e.key === "ArrowDown") { cannedIndex = (cannedIndex + 1) % cannedItems.length; renderCanned(); e.preventDefault(); return; }
        if (e.key === "ArrowUp") { cannedIndex = (cannedIndex + cannedItems.length - 1) % cannedItems.length; renderCanned(); e.preventDefault(); return; }
        if (e.key === "Enter" || e.key === "Tab") { pickCanned(cannedIndex); e.preventDefault(); return; }
        if (e.key === "Escape") { menu.hidden = true; return; }
      }
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submitComposer(form); }
    });
    ta.addEventListener("input", () => { updateCounter(); updateCanned(); });
    $("#canned-menu").addEventListener("mousedown", (e) => { const li = e.target.closest("li"); if (li) { e.preventDefault(); pickCanned(Number(li.dataset.i)); } });
    const file = $("#composer-file");
    if (file) file.addEventListener("change", () => { $("#composer-file-name").textContent = file.files[0] ? file.files[0].name : ""; });
    $$('#composer input[name="mode"]').forEach((r) => r.addEventListener("change", onModeChange));
    onModeChange();
  }
  function onModeChange() {
    const m = mode(), form = $("#composer");
    form.dataset.mode = m;
    const picker = $("#template-picker");
    const ta = $("#composer-text");
    ta.hidden = m === "template";
    if (picker) {
      picker.hidden = m !== "template";
      if (m === "template" && !picker.dataset.loaded) loadTemplates(picker, form.dataset.conversation);
    }
    ta.placeholder = m === "note" ? "Private note for your team (never sent to the customer)" : "Type a reply; / for saved replies; Enter sends, Shift+Enter new line";
  }
  async function loadTemplates(picker, conversation) {
    const html = await fetchHtml(`/inbox/c/${conversation}/templates/`);
    picker.innerHTML = html || '<p class="muted">No approved templates yet.</p>';
    picker.dataset.loaded = "1";
    activate(picker);
  }
  async function submitTemplate(form) {
    const picker = $("#template-picker form");
    if (!picker) return;
    picker.requestSubmit();
  }

  // --- keyboard shortcuts -------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const tag = (e.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || e.target.isContentEditable) return;
    const rows = $$("#rows .row");
    const current = rows.findIndex((r) => Number(r.dataset.id) === openId());
    if (e.key === "j" || e.key === "k") {
      const next = rows[Math.max(0, Math.min(rows.length - 1, current + (e.key === "j" ? 1 : -1)))] || rows[0];
      if (next) { const link = $(".row-link", next); link.click(); link.focus(); }
      e.preventDefault();
    } else if (e.key === "r") {
      const ta = $("#composer-text");
      if (ta) { ta.focus(); e.preventDefault(); }
    } else if (e.key === "e") {
      const resolve = $("#resolve-btn");
      if (resolve) { resolve.click(); e.preventDefault(); }
    }
  });

  // --- htmx glue ----------------------------------------------------------------------------------
  // A template send carries a key kept until it succeeds, so a double submit stores one message.
  document.body.addEventListener("htmx:configRequest", (e) => {
    const form = e.detail.elt;
    if (!form || form.id !== "template-form" || e.detail.verb !== "post") return;
    const input = form.querySelector("[data-idempotency]");
    if (!input.value) input.value = uuid();
    e.detail.parameters.idempotency_key = input.value;
  });
  // The socket may have appended the stored template message already: never show it twice.
  document.body.addEventListener("htmx:beforeSwap", (e) => {
    // beforeSwap fires on the target (#messages); the form that posted is in the request's config.
    const config = e.detail.requestConfig;
    if (!config || !config.elt || config.elt.id !== "template-form" || config.verb !== "post") return;
    const node = fragment(e.detail.serverResponse || "").firstElementChild;
    if (node && node.id && document.getElementById(node.id)) e.detail.shouldSwap = false;
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    const form = e.detail.elt;
    if (!form || form.id !== "template-form" || e.detail.requestConfig.verb !== "post" || !e.detail.successful) return;
    const picker = $("#template-picker");
    picker.dataset.loaded = "";
    loadTemplates(picker, form.dataset.conversation);
    scrollToEnd();
  });
  // The panel's forms answer 422 (the message next to the input) and 403 (a refusal) with the part to
  // show: swap those instead of treating them as failures.
  document.body.addEventListener("htmx:beforeSwap", (e) => {
    const config = e.detail.requestConfig;
    const status = e.detail.xhr.status;
    if ((status === 422 || status === 403) && config && config.elt && config.elt.closest("#contact-pane")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  // A save in the panel: the list row and the thread head show the contact's name.
  document.body.addEventListener("inbox:contact-changed", (e) => {
    const id = e.detail && e.detail.conversation;
    if (!id) return;
    refreshRow(id);
    if (id === openId()) refreshHead(id);
  });
  document.body.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    const form = e.target.closest && e.target.closest(".cf-form");
    const cancel = form && $("[data-cancel]", form);
    if (cancel) { e.preventDefault(); cancel.click(); }
  });
  document.body.addEventListener("htmx:afterSwap", (e) => {
    if (e.detail.target && e.detail.target.id === "thread-pane") {
      $("#inbox").classList.add("has-thread");
      setupThread();
      refreshCounts();
    }
    if (e.detail.target && e.detail.target.id === "list-pane") markCurrent();
  });
  document.body.addEventListener("click", (e) => {
    const back = e.target.closest(".back");
    if (back && window.matchMedia("(max-width: 900px)").matches) {
      e.preventDefault();
      $("#inbox").classList.remove("has-thread");
    }
    const toggle = e.target.closest("[data-toggle-contact]");
    if (toggle) {
      const pane = $("#contact-pane");
      if (pane) setContactOpen(!pane.classList.contains("open"));
    }
  });

  setupThread();
  refreshCounts();
  connect();
})();
