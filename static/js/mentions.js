// @mentions in private notes: typing "@" and a few letters of a colleague's name or e-mail in the
// composer (note mode) lists matching agents; picking one inserts "@their@email ". Names are shown with
// textContent (never as HTML).
(() => {
  "use strict";
  let items = [], index = 0, timer = null;
  const $ = (s) => document.querySelector(s);
  const noteMode = () => { const m = document.querySelector('#composer input[name="mode"]:checked'); return m && m.value === "note"; };
  function menu() {
    let ul = $("#mention-menu");
    if (!ul) {
      const ta = $("#composer-text");
      if (!ta) return null;
      ul = document.createElement("ul");
      ul.id = "mention-menu"; ul.className = "canned-menu"; ul.setAttribute("role", "listbox");
      ul.setAttribute("aria-label", "Mention a colleague"); ul.hidden = true;
      ta.insertAdjacentElement("afterend", ul);
      ul.addEventListener("mousedown", (e) => { const li = e.target.closest("li"); if (li) { e.preventDefault(); pick(Number(li.dataset.i)); } });
    }
    return ul;
  }
  function query(ta) {
    const before = ta.value.slice(0, ta.selectionStart);
    const match = before.match(/(^|\s)@([^\s@]{0,40})$/);
    return match ? match[2] : null;
  }
  function render() {
    const ul = menu(); if (!ul) return;
    ul.replaceChildren(...items.map((u, i) => {
      const li = document.createElement("li");
      li.setAttribute("role", "option"); li.id = `mention-${i}`; li.dataset.i = String(i);
      li.setAttribute("aria-selected", String(i === index));
      const strong = document.createElement("strong"); strong.textContent = u.name;
      li.append(strong, " ", u.email);
      return li;
    }));
    ul.hidden = items.length === 0;
  }
  function pick(i) {
    const ta = $("#composer-text"), u = items[i];
    if (!ta || !u) return;
    const start = ta.selectionStart, before = ta.value.slice(0, start).replace(/@([^\s@]{0,40})$/, `@${u.email} `);
    ta.value = before + ta.value.slice(start);
    ta.setSelectionRange(before.length, before.length);
    items = []; render(); ta.focus();
  }
  document.addEventListener("input", (e) => {
    const ta = e.target;
    if (!(ta instanceof HTMLTextAreaElement) || ta.id !== "composer-text") return;
    const q = noteMode() ? query(ta) : null;
    clearTimeout(timer);
    if (q === null) { items = []; render(); return; }
    timer = setTimeout(async () => {
      const response = await fetch(`/inbox/mentions/?q=${encodeURIComponent(q)}`, { credentials: "same-origin" });
      if (!response.ok) return;
      items = (await response.json()).results; index = 0; render();
    }, 120);
  });
  document.addEventListener("keydown", (e) => {
    const ul = $("#mention-menu");
    if (!ul || ul.hidden || e.target.id !== "composer-text" || !items.length) return;
    if (e.key === "ArrowDown") { index = (index + 1) % items.length; render(); }
    else if (e.key === "ArrowUp") { index = (index + items.length - 1) % items.length; render(); }
    else if (e.key === "Enter" || e.key === "Tab") { pick(index); }
    else if (e.key === "Escape") { items = []; render(); }
    else return;
    e.preventDefault(); e.stopImmediatePropagation();
  }, true);
})();
