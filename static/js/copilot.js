// The copilot bar in the composer: asks /ai/c/<id>/copilot/ and puts the text into the composer. It never
// sends anything: the agent edits and sends as usual.
(function () {
  if (window.__copilot) return;
  window.__copilot = true;
  function csrf(form) {
    const input = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-copilot]");
    if (!button) return;
    const bar = button.closest(".copilot");
    const composer = document.getElementById("composer");
    const textarea = document.getElementById("composer-text");
    const status = bar.querySelector(".copilot-status");
    const body = new FormData();
    body.append("action", button.dataset.copilot);
    if (button.dataset.style) body.append("style", button.dataset.style);
    if (textarea) body.append("draft", textarea.value);
    const ins = document.querySelectorAll(".msg.in[data-id]");
    if (ins.length) body.append("message_id", ins[ins.length - 1].dataset.id);
    status.textContent = "Thinking…";
    button.disabled = true;
    try {
      const response = await fetch(bar.dataset.url, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf(composer), "Accept": "application/json" },
      });
      const data = await response.json();
      if (!response.ok) { status.textContent = (data.error && data.error.message) || "The copilot failed."; return; }
      if (textarea) {
        textarea.value = data.text;
        textarea.dispatchEvent(new Event("input", { bubbles: true }));
        textarea.focus();
      }
      status.textContent = "";
    } catch (e) {
      status.textContent = "The copilot could not be reached.";
    } finally {
      button.disabled = false;
    }
  });
})();
