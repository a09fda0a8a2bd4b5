"use strict";
// The embedding page: asks its own backend for a preview URL, frames it, listens to it.
(function () {
  var form = document.getElementById("mint-form");
  var iframe = document.getElementById("preview");
  var mintStatus = document.getElementById("mint-status");
  var originSuffix = document.body.dataset.previewOriginSuffix;
  var current = null;
  var remints = 0;

  function text(id, value) {
    document.getElementById(id).textContent = value;
  }

  function wanted() {
    return {
      sandbox_id: form.elements.sandbox_id.value,
      scope: form.elements.scope.value,
      expires_in: Number(form.elements.expires_in.value),
    };
  }

  function mint(request) {
    mintStatus.textContent = "minting...";
    mintStatus.dataset.state = "pending";
    return fetch("/demo/api/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { status: response.status, body: body };
        });
      })
      .then(function (result) {
        mintStatus.dataset.code = String(result.status);
        if (result.status !== 200) {
          var error = result.body.error || {};
          mintStatus.textContent = result.status + " " + (error.code || "error") + ": " + (error.message || "");
          mintStatus.dataset.state = "error";
          current = null;
          text("expires-at", "-");
          text("scope-shown", "-");
          iframe.src = "about:blank";
          return;
        }
        current = request;
        mintStatus.textContent = "200 minted for " + request.sandbox_id;
        mintStatus.dataset.state = "ok";
        text("expires-at", result.body.expires_at);
        text("scope-shown", result.body.scope);
        iframe.src = result.body.url;
      })
      .catch(function (error) {
        mintStatus.textContent = "mint failed: " + error;
        mintStatus.dataset.state = "error";
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    mint(wanted());
  });

  // The access-denied page inside the iframe posts {type, sandbox_id, reason}.
  window.addEventListener("message", function (event) {
    if (event.source !== iframe.contentWindow || !event.origin.endsWith(originSuffix)) {
      return;
    }
    var item = document.createElement("li");
    item.textContent = new Date().toISOString().slice(11, 19) + " " + JSON.stringify(event.data);
    document.getElementById("message-log").appendChild(item);
    if (event.data && event.data.type === "preview.expired" && current) {
      remints += 1;
      text("remint-count", String(remints));
      mint(current);
    }
  });

  mint(wanted());
})();
