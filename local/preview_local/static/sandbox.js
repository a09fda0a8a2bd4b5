"use strict";
// The sandbox's own app: proves the session cookie carries every subresource request.
(function () {
  var body = document.body;
  var received = document.getElementById("received");
  var inputStatus = document.getElementById("input-status");

  function mark(id, text) {
    var element = document.getElementById(id);
    element.textContent = text;
    element.dataset.loaded = "true";
  }

  function show(status) {
    received.textContent = status.inputs.join("");
    document.getElementById("credential-seen").textContent = status.credential_seen ? "YES" : "never";
  }

  mark("check-script", "script loaded \u2713");

  var xhr = new XMLHttpRequest();
  xhr.open("GET", "/api/status");
  xhr.onload = function () {
    if (xhr.status === 200) {
      mark("check-xhr", "XHR loaded \u2713");
      show(JSON.parse(xhr.responseText));
    } else {
      document.getElementById("check-xhr").textContent = "XHR failed: " + xhr.status;
    }
  };
  xhr.send();

  // One keystroke per POST to the input channel, in order.
  var queue = Promise.resolve();
  document.getElementById("keys").addEventListener("keydown", function (event) {
    if (event.key.length !== 1) {
      return;
    }
    var key = event.key;
    queue = queue
      .then(function () {
        return fetch(body.dataset.inputUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ key: key }),
        });
      })
      .then(function (response) {
        var outcome = response.ok ? "delivered" : "refused";
        // Counted once the answer is shown, so a check that waits for the count sees the text too.
        function count() {
          inputStatus.dataset.state = outcome;
          inputStatus.dataset[outcome] = String(Number(inputStatus.dataset[outcome] || 0) + 1);
        }
        if (!response.ok) {
          inputStatus.textContent = "Input refused (" + response.status + "): this preview is view-only.";
          count();
          return null;
        }
        inputStatus.textContent = "Input delivered to the sandbox.";
        return response.json().then(show).then(count);
      })
      .catch(function (error) {
        inputStatus.textContent = "Input failed: " + error;
        inputStatus.dataset.state = "failed";
      });
  });
})();
