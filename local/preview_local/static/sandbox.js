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

  // What the sandbox received before this page opened is not shown: a read session never shows
  // the input of an earlier (interact) session.
  var seenBefore = null;

  function show(status) {
    if (seenBefore === null) {
      seenBefore = status.inputs.length;
    }
    received.textContent = status.inputs.slice(seenBefore).join("");
    document.getElementById("credential-seen").textContent = status.credential_seen ? "YES" : "never";
  }

  // The data plane's denial page says why (its preview-event JSON): tell them apart.
  var REFUSALS = {
    read_only: "this preview is view-only.",
    expired: "the preview session expired.",
    revoked: "access to this preview was revoked.",
    other: "the preview refused it.",
  };

  function refusal(page) {
    try {
      var parsed = new DOMParser().parseFromString(page, "text/html");
      var event = JSON.parse(parsed.getElementById("preview-event").textContent);
      return typeof event.reason === "string" && REFUSALS[event.reason] ? event.reason : "other";
    } catch (error) {
      return "other";
    }
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
        // The page shows the outcome first, then counts it: a reader waiting on the count sees
        // the page as it is after that keystroke.
        function count(outcome) {
          inputStatus.dataset.state = outcome;
          inputStatus.dataset[outcome] = String(Number(inputStatus.dataset[outcome] || 0) + 1);
        }
        if (!response.ok) {
          return response.text().then(function (page) {
            var reason = refusal(page);
            inputStatus.dataset.reason = reason;
            inputStatus.textContent = "Input refused (" + response.status + "): " + (REFUSALS[reason] || REFUSALS.other);
            count("refused");
          });
        }
        return response.json().then(function (status) {
          show(status);
          inputStatus.textContent = "Input delivered to the sandbox.";
          count("delivered");
        });
      })
      .catch(function (error) {
        inputStatus.textContent = "Input failed: " + error;
        inputStatus.dataset.state = "failed";
      });
  });
})();
