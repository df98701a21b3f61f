// Searchable pickers (templates/crm/_picker.html, crm.forms.PickerWidget). The text input asks the server
// for options through htmx; this module turns the returned list into a keyboard-usable combobox and puts
// the picked option's id in the hidden input. One delegated set of listeners serves every picker.
(() => {
  const pickerOf = (el) => el && el.closest("[data-picker]");
  const parts = (picker) => ({
    value: picker.querySelector("[data-picker-value]"),
    input: picker.querySelector("[data-picker-input]"),
    list: picker.querySelector("[data-picker-options]"),
  });
  const options = (picker) => [...parts(picker).list.querySelectorAll('[role="option"]:not([aria-disabled="true"])')];

  const close = (picker) => {
    const { input, list } = parts(picker);
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  };

  const highlight = (picker, option) => {
    const { input } = parts(picker);
    options(picker).forEach((o) => o.setAttribute("aria-selected", o === option ? "true" : "false"));
    if (option) {
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    }
  };

  const set = (picker, id, label) => {
    const { value, input } = parts(picker);
    value.value = id;
    input.value = label;
    picker.dispatchEvent(new CustomEvent("picker:change", { bubbles: true, detail: { id, label } }));
  };

  const choose = (picker, option) => {
    set(picker, option.dataset.value, option.dataset.label);
    close(picker);
    // A picked contact prefills the form's company picker when that one is still empty.
    const target = picker.dataset.pickerFills;
    const form = picker.closest("form");
    if (target && form && option.dataset.fillValue) {
      const other = form.querySelector(`[data-picker][data-picker-name="${CSS.escape(target)}"]`);
      if (other && !parts(other).value.value) set(other, option.dataset.fillValue, option.dataset.fillLabel);
    }
  };

  // The endpoint's parameter is `q`, whatever the field's name (the input is named <field>_search so a
  // form submitted without this script still carries the typed text).
  document.addEventListener("htmx:configRequest", (e) => {
    const input = e.target.closest && e.target.closest("[data-picker-input]");
    if (!input) return;
    const params = e.detail.parameters;
    delete params[input.name];
    params.q = input.value;
  });

  document.addEventListener("htmx:afterSwap", (e) => {
    const picker = pickerOf(e.target);
    if (!picker || e.target !== parts(picker).list) return;
    const { input, list } = parts(picker);
    list.querySelectorAll('[role="option"]').forEach((o, i) => { o.id = `${list.id}-${i}`; });
    const show = input.value.trim() !== "" && document.activeElement === input;
    list.hidden = !show;
    input.setAttribute("aria-expanded", show ? "true" : "false");
  });

  document.addEventListener("input", (e) => {
    const picker = pickerOf(e.target);
    if (!picker || e.target !== parts(picker).input) return;
    parts(picker).value.value = ""; // the text no longer names what was picked
    if (!e.target.value.trim()) close(picker);
  });

  document.addEventListener("keydown", (e) => {
    const picker = pickerOf(e.target);
    if (!picker || e.target !== parts(picker).input) return;
    const { list } = parts(picker);
    const all = options(picker);
    const current = all.findIndex((o) => o.getAttribute("aria-selected") === "true");
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!all.length) return;
      e.preventDefault();
      list.hidden = false;
      parts(picker).input.setAttribute("aria-expanded", "true");
      const step = e.key === "ArrowDown" ? 1 : -1;
      highlight(picker, all[(current + step + all.length) % all.length]);
    } else if (e.key === "Enter" && !list.hidden && current >= 0) {
      e.preventDefault(); // picking is not submitting
      choose(picker, all[current]);
    } else if (e.key === "Escape" && !list.hidden) {
      e.preventDefault();
      close(picker);
    }
  });

  // mousedown, not click: the input's blur would close the list before a click lands.
  document.addEventListener("mousedown", (e) => {
    const option = e.target.closest && e.target.closest('[data-picker-options] [role="option"]');
    if (!option || option.getAttribute("aria-disabled") === "true") return;
    e.preventDefault();
    choose(pickerOf(option), option);
  });

  document.addEventListener("focusout", (e) => {
    const picker = pickerOf(e.target);
    if (picker && !picker.contains(e.relatedTarget)) close(picker);
  });
})();
