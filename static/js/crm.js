// CRM pages: the deals board (drag a card to another stage), confirmations, copy buttons, autosubmit.
(() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // Deals board: HTML5 drag and drop; the server decides (POST /deals/<id>/move/), a refusal puts the card back.
  const board = document.querySelector("[data-board]");
  if (board) {
    const moveUrl = (id) => board.dataset.moveUrl.replace(/\/0\/move\/$/, `/${id}/move/`);
    let dragged = null;
    const recount = () => board.querySelectorAll(".column").forEach((col) => {
      const count = col.querySelector("[data-count]");
      if (count) count.textContent = col.querySelectorAll(".deal-card").length;
    });
    board.addEventListener("dragstart", (e) => {
      const card = e.target.closest(".deal-card");
      if (!card) return;
      dragged = { card, from: card.parentElement, next: card.nextElementSibling };
      card.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", card.dataset.deal);
    });
    board.addEventListener("dragend", (e) => {
      e.target.closest(".deal-card")?.classList.remove("dragging");
      board.querySelectorAll(".drop-target").forEach((c) => c.classList.remove("drop-target"));
    });
    board.addEventListener("dragover", (e) => {
      const col = e.target.closest(".column");
      if (!col || !dragged) return;
      e.preventDefault();
      board.querySelectorAll(".drop-target").forEach((c) => c !== col && c.classList.remove("drop-target"));
      col.classList.add("drop-target");
    });
    board.addEventListener("drop", async (e) => {
      const col = e.target.closest(".column");
      if (!col || !dragged) return;
      e.preventDefault();
      col.classList.remove("drop-target");
      const { card, from, next } = dragged;
      dragged = null;
      if (col.querySelector(".cards") === from) return;
      col.querySelector(".cards").prepend(card);
      recount();
      const body = new URLSearchParams({ stage: col.dataset.stage });
      try {
        const response = await fetch(moveUrl(card.dataset.deal), {
          method: "POST", body, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin",
        });
        if (!response.ok) {
          let message = "The deal could not be moved.";
          try { message = (await response.json()).error.message || message; } catch (_) { /* not JSON */ }
          throw new Error(message);
        }
      } catch (error) {
        from.insertBefore(card, next);
        recount();
        window.alert(error.message);
      }
    });
  }

  document.addEventListener("submit", (e) => {
    const message = e.target.dataset?.confirm;
    if (message && !window.confirm(message)) e.preventDefault();
  });

  document.addEventListener("click", (e) => {
    const button = e.target.closest("[data-copy-button]");
    if (!button) return;
    const text = button.parentElement.querySelector("[data-copy]")?.textContent || "";
    navigator.clipboard?.writeText(text).then(() => { button.textContent = "Copied"; });
  });

  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
})();
