// Live fragments: an element with data-poll="URL" is refreshed from URL every second
// until the server answers with data-final on the fragment's root element.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-poll]").forEach((el) => {
    const tick = async () => {
      const res = await fetch(el.dataset.poll, { headers: { Accept: "text/html" } });
      if (!res.ok) return setTimeout(tick, 3000);
      el.innerHTML = await res.text();
      if (!el.querySelector("[data-final]")) setTimeout(tick, 1000);
    };
    if (!el.querySelector("[data-final]")) setTimeout(tick, 1000);
  });
  // Buttons with data-confirm ask before submitting their form (the seed's "Voulez-vous vraiment … ?").
  document.querySelectorAll("[data-confirm]").forEach((btn) => {
    btn.addEventListener("click", (ev) => { if (!confirm(btn.dataset.confirm)) ev.preventDefault(); });
  });
});
// Dynamic-field buttons: a click writes {{field}} where the cursor was in the last focused field.
document.addEventListener("DOMContentLoaded", () => {
  let target = document.querySelector("[data-insert-target]");
  document.querySelectorAll("input[type=text], textarea").forEach((el) =>
    el.addEventListener("focus", () => { target = el; }));
  document.querySelectorAll("[data-insert]").forEach((btn) => {
    btn.addEventListener("click", (ev) => {
      ev.preventDefault();
      if (!target) return;
      const text = btn.dataset.insert, start = target.selectionStart ?? target.value.length;
      target.value = target.value.slice(0, start) + text + target.value.slice(target.selectionEnd ?? start);
      target.focus();
      target.selectionStart = target.selectionEnd = start + text.length;
    });
  });
});
// Phones stack table rows (relais.css): each cell is labelled with its column's heading.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table").forEach((table) => {
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    table.querySelectorAll("tbody tr").forEach((tr) => {
      [...tr.children].forEach((td, i) => { if (heads[i] && td.colSpan === 1) td.dataset.label = heads[i]; });
    });
  });
});
// «Sélection»: a button with data-select-all="NAME" ticks every checkbox NAME of its form, or unticks them all.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-select-all]").forEach((btn) => {
    btn.addEventListener("click", () => {
      const boxes = [...btn.form.querySelectorAll(`input[type=checkbox][name="${btn.dataset.selectAll}"]`)];
      const tick = boxes.some((box) => !box.checked);
      boxes.forEach((box) => { box.checked = tick; });
    });
  });
});
// Progressive enhancement of forms: an element with data-shown-when="field=value" is shown only while the form's
// field `field` holds `value` (the campaign form's template or workflow picker). Without script, all stay visible
// and the server still checks what fits.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-shown-when]").forEach((el) => {
    const [name, value] = el.dataset.shownWhen.split("=");
    const field = el.closest("form")?.elements.namedItem(name);
    if (!field) return;
    const sync = () => { el.hidden = field.value !== value; };
    field.addEventListener("change", sync);
    sync();
  });
});
// A search box over a long multi-select (the lists' plates and people): data-option-search="<select id>" shows
// only the options whose text holds every typed word (case, accents, dashes and spaces ignored); chosen ones stay.
// Without script the box stays hidden and the whole select is there.
document.addEventListener("DOMContentLoaded", () => {
  const fold = (t) => t.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  document.querySelectorAll("[data-option-search]").forEach((box) => {
    const select = document.getElementById(box.dataset.optionSearch);
    if (!select) return;
    box.hidden = false;
    box.addEventListener("input", () => {
      const words = fold(box.value).split(/\s+/).filter(Boolean).map((w) => w.replace(/[-\s]/g, ""));
      [...select.options].forEach((option) => {
        const text = fold(option.text).replace(/[-\s]/g, "");
        option.hidden = !option.selected && !words.every((w) => text.includes(w));
      });
    });
  });
});
