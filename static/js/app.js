// Saldo's few behaviours that HTMX does not cover. No inline scripts: the CSP forbids them.
(function () {
  "use strict";

  function toast(message, level) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (level || "error");
    el.setAttribute("role", "alert");
    var span = document.createElement("span");
    span.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", document.body.dataset.dismiss || "Dismiss");
    close.textContent = "\u00d7";
    el.appendChild(span);
    el.appendChild(close);
    box.appendChild(el);
  }

  document.addEventListener("click", function (event) {
    var close = event.target.closest(".toast-close");
    if (close) close.closest(".toast").remove();
    var copy = event.target.closest("[data-copy-target]");
    if (copy) {
      var source = document.getElementById(copy.getAttribute("data-copy-target"));
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.value || source.textContent).then(function () {
          toast(copy.getAttribute("data-copied") || "Copied", "ok");
        });
      }
    }
  });

  document.addEventListener("click", function (event) {
    var print = event.target.closest("[data-print]");
    if (print) { event.preventDefault(); window.print(); }
  });

  // "Tick all" ticks every row checkbox of the same name.
  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-tick-all]");
    if (!all) return;
    var name = all.getAttribute("data-tick-all");
    document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });

  // Choosing a service fills in its default price; the amount stays editable.
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-fills-amount]");
    if (!select) return;
    var option = select.options[select.selectedIndex];
    var amount = document.getElementById(select.getAttribute("data-fills-amount"));
    if (amount && option && option.dataset.price) amount.value = option.dataset.price;
  });

  // Toasts that are not errors fade by themselves.
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll(".toast-ok, .toast-info").forEach(function (el) {
      if (!el.dataset.timer) {
        el.dataset.timer = "1";
        setTimeout(function () { el.remove(); }, 4000);
      }
    });
  });

  // When the network fails, say so instead of doing nothing.
  document.addEventListener("htmx:sendError", function () {
    toast(document.body.dataset.offline || "No connection to the server. Try again.", "error");
  });

  // One tap is one request: a submit button stays disabled until the answer arrives.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.hasAttribute("hx-post") || form.hasAttribute("data-allow-resubmit")) return;
    if (form.dataset.submitted) { event.preventDefault(); return; }
    form.dataset.submitted = "1";
    setTimeout(function () { delete form.dataset.submitted; }, 5000);
  });
})();
