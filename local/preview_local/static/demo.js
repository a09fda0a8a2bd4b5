"use strict";
// The embedding page: a <sandbox-preview> (docs/embed/preview-embed.js) that asks this page's
// own backend for preview URLs; the form changes what it shows, the page logs its events.
(function () {
  var form = document.getElementById("mint-form");
  var preview = document.getElementById("preview");
  var mintStatus = document.getElementById("mint-status");
  var remints = 0;

  function text(id, value) {
    document.getElementById(id).textContent = value;
  }

  function log(line) {
    var item = document.createElement("li");
    item.textContent = new Date().toISOString().slice(11, 19) + " " + line;
    document.getElementById("message-log").appendChild(item);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    mintStatus.textContent = "minting...";
    mintStatus.dataset.state = "pending";
    preview.setAttribute("sandbox", form.elements.sandbox_id.value);
    preview.setAttribute("scope", form.elements.scope.value);
    preview.setAttribute("expires-in", String(Number(form.elements.expires_in.value)));
    preview.setAttribute("renew", form.elements.renew.value);
    preview.reload();
  });

  preview.addEventListener("preview-minted", function (event) {
    mintStatus.dataset.code = "200";
    mintStatus.textContent = "200 minted for " + preview.getAttribute("sandbox");
    mintStatus.dataset.state = "ok";
    text("expires-at", event.detail.expiresAt);
    text("scope-shown", event.detail.scope);
  });

  preview.addEventListener("preview-error", function (event) {
    var detail = event.detail;
    mintStatus.dataset.code = String(detail.status);
    mintStatus.textContent = detail.status + " " + detail.code + ": " + detail.message;
    mintStatus.dataset.state = "error";
    text("expires-at", "-");
    text("scope-shown", "-");
  });

  preview.addEventListener("preview-failed", function (event) {
    log("preview-failed after " + event.detail.failures + " failure(s): " + event.detail.code);
  });

  // What the preview posted, as it posted it ({type, sandbox_id, reason}).
  preview.addEventListener("preview-message", function (event) {
    var detail = event.detail;
    log(JSON.stringify({ type: detail.type, sandbox_id: detail.sandboxId, reason: detail.reason }));
  });

  // Renewal in place: the same document keeps running on the new session (no reload).
  preview.addEventListener("preview-renewed", function (event) {
    text("renewal-count", String(event.detail.renewals));
    text("expires-at", event.detail.expiresAt);
    log("renewed in place until " + event.detail.expiresAt);
  });

  preview.addEventListener("preview-expired", function () {
    remints += 1;
    text("remint-count", String(remints));
  });
})();
