/*! preview-embed.js 1.0.0 | <sandbox-preview>: embed a sandbox preview | no dependencies, no build step */
// Usage:
//   <script src="preview-embed-1.0.0.js" integrity="sha384-…" crossorigin="anonymous" defer></script>
//   <sandbox-preview mint-endpoint="/my-backend/preview" sandbox="sbx-abc123" scope="read"
//                    width="960" height="540"></sandbox-preview>
//
// The element POSTs {"sandbox_id", "scope"[, "expires_in"]} (JSON) to `mint-endpoint`, the
// integrator's own backend, which mints with its API key and answers the mint API's JSON
// ({"url", "expires_at", "scope", …}). It frames `url`, listens to messages only from that exact
// origin and that frame, and:
//   preview.expired      re-mints, loads the new preview hidden, swaps it in when it has loaded
//                        (no denial page stays visible); event "preview-expired" (cancelable)
//   preview.denied       event "preview-denied"; reason cookies_blocked also "preview-cookies-blocked",
//                        and the page's "Open in a new tab" opens a freshly minted URL top-level
//   preview.unavailable  event "preview-unavailable" (origin_unreachable, unavailable)
// Failed mints (network, 5xx, 429) and previews that expire before they show are retried with
// backoff; after `max-failures` (default 3) in a row, or at once on another 4xx, it stops and
// raises "preview-failed". Other events: "preview-minted", "preview-ready", "preview-error",
// "preview-message". Every event bubbles; `detail` never holds the token or the URL.
(function () {
  "use strict";

  var VERSION = "1.0.0";
  var TAG = "sandbox-preview";
  var EVENT_TYPES = {
    "preview.expired": true,
    "preview.denied": true,
    "preview.unavailable": true,
    "preview.open_in_new_tab": true,
  };
  var DEFAULT_ALLOW = "clipboard-read; clipboard-write; fullscreen";
  // Scripts and cookies (same-origin) for the sandbox app; popups it opens are ordinary tabs.
  // Never top navigation: a preview cannot take over the embedding page.
  var DEFAULT_SANDBOX =
    "allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox " +
    "allow-modals allow-downloads";
  var STYLE =
    ":host{display:block;position:relative;min-height:150px;overflow:hidden}" +
    "iframe{position:absolute;inset:0;width:100%;height:100%;border:0;background:white}" +
    "iframe[data-state=loading],iframe[data-state=hidden]{visibility:hidden}" +
    ".status{position:absolute;inset:0;z-index:1;display:flex;align-items:center;justify-content:center;" +
    "font:14px/1.4 system-ui,sans-serif;color:rgb(75,85,99);background:rgb(245,246,248)}" +
    ".status[hidden]{display:none}";

  if (!window.customElements || window.customElements.get(TAG)) {
    return;
  }

  function MintError(message, status, code, retryable) {
    this.message = message;
    this.status = status;
    this.code = code;
    this.retryable = retryable;
  }

  // The preview URL the backend answered, if it is one: http(s), for the sandbox asked for.
  function previewTarget(url, sandboxId) {
    var parsed;
    try {
      parsed = new URL(url);
    } catch (error) {
      return null;
    }
    var host = parsed.hostname.toLowerCase();
    var local = host === "localhost" || host.slice(-10) === ".localhost";
    var secure = parsed.protocol === "https:" || (parsed.protocol === "http:" && local);
    if (!secure || host.indexOf(sandboxId.toLowerCase() + ".") !== 0) {
      return null;
    }
    return { url: parsed.href, origin: parsed.origin };
  }

  class SandboxPreview extends HTMLElement {
    static get observedAttributes() {
      return ["mint-endpoint", "sandbox", "scope", "expires-in"];
    }

    constructor() {
      super();
      this._root = this.attachShadow({ mode: "open" });
      this._generation = 0;
      this._failures = 0;
      this._stopped = false;
      this._visible = null; // {frame, origin, cookiesBlocked}
      this._loading = null; // {frame, origin, renewal}
      this._retryTimer = null;
      this._reloadQueued = false;
      this._onMessage = this._onMessage.bind(this);
      this.expiresAt = null;
      this.scope = null;
    }

    static get version() {
      return VERSION;
    }

    get previewOrigin() {
      return this._visible ? this._visible.origin : null;
    }

    get failures() {
      return this._failures;
    }

    connectedCallback() {
      if (!this._status) {
        // A constructed stylesheet: a page whose CSP forbids inline styles needs no exception.
        if ("adoptedStyleSheets" in this._root && window.CSSStyleSheet) {
          var sheet = new CSSStyleSheet();
          sheet.replaceSync(STYLE);
          this._root.adoptedStyleSheets = [sheet];
        } else {
          var style = document.createElement("style");
          style.textContent = STYLE;
          this._root.append(style);
        }
        this._status = document.createElement("div");
        this._status.className = "status";
        this._status.setAttribute("part", "status");
        this._status.setAttribute("role", "status");
        this._root.append(this._status);
      }
      // width/height attributes, like an iframe's (set through the CSSOM: no inline style needed)
      ["width", "height"].forEach(function (name) {
        var value = this.getAttribute(name);
        if (value) {
          this.style[name] = /^[0-9]+$/.test(value) ? value + "px" : value;
        }
      }, this);
      window.addEventListener("message", this._onMessage);
      this.reload();
    }

    disconnectedCallback() {
      window.removeEventListener("message", this._onMessage);
      this._generation += 1;
      clearTimeout(this._retryTimer);
    }

    attributeChangedCallback(name, oldValue, newValue) {
      if (this.isConnected && oldValue !== newValue) {
        this.reload();
      }
    }

    // Mint and show a new preview now (after a failure stop, or when the page wants a fresh one).
    reload() {
      if (this._reloadQueued) {
        return;
      }
      this._reloadQueued = true;
      var self = this;
      Promise.resolve().then(function () {
        self._reloadQueued = false;
        if (!self.isConnected) {
          return;
        }
        self._failures = 0;
        self._stopped = false;
        clearTimeout(self._retryTimer);
        self._renew(false);
      });
    }

    // Open the preview top-level in a new tab with a freshly minted URL. Call it from a click:
    // the tab is opened at once (popup blockers allow only that) and navigated once minted.
    openInNewTab() {
      var tab = window.open("", "_blank");
      if (!tab) {
        this._emit("preview-error", { code: "popup_blocked", message: "the browser blocked the new tab" });
        return Promise.resolve(false);
      }
      try {
        tab.opener = null;
      } catch (error) {
        // cross-origin already: nothing to cut
      }
      var self = this;
      return this._mint().then(
        function (minted) {
          tab.location.replace(minted.url);
          return true;
        },
        function (error) {
          tab.close();
          self._emit("preview-error", self._errorDetail(error));
          return false;
        }
      );
    }

    // ------------------------------------------------------------------------ internals
    _emit(name, detail, cancelable) {
      return this.dispatchEvent(
        new CustomEvent(name, { detail: detail, bubbles: true, composed: true, cancelable: !!cancelable })
      );
    }

    _showStatus(text) {
      this._status.textContent = text;
      this._status.hidden = !text;
    }

    _mint() {
      var endpoint = this.getAttribute("mint-endpoint");
      var sandboxId = this.getAttribute("sandbox");
      if (!endpoint || !sandboxId) {
        return Promise.reject(new MintError("mint-endpoint and sandbox are required", 0, "misconfigured", false));
      }
      var request = { sandbox_id: sandboxId, scope: this.getAttribute("scope") || "read" };
      var expiresIn = this.getAttribute("expires-in");
      if (expiresIn) {
        request.expires_in = Number(expiresIn);
      }
      var self = this;
      return fetch(endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
        body: JSON.stringify(request),
      })
        .catch(function () {
          throw new MintError("the mint endpoint is unreachable", 0, "network_error", true);
        })
        .then(function (response) {
          return response.json().then(
            function (body) {
              return { status: response.status, body: body };
            },
            function () {
              return { status: response.status, body: null };
            }
          );
        })
        .then(function (answer) {
          var body = answer.body || {};
          if (answer.status !== 200) {
            var error = body.error || {};
            var retryable = answer.status >= 500 || answer.status === 429 || answer.status === 408;
            throw new MintError(error.message || "mint failed", answer.status, error.code || "error", retryable);
          }
          var target = typeof body.url === "string" ? previewTarget(body.url, sandboxId) : null;
          if (!target) {
            throw new MintError("the backend answered no preview URL for this sandbox", 200, "bad_url", false);
          }
          target.expiresAt = typeof body.expires_at === "string" ? body.expires_at : null;
          target.scope = typeof body.scope === "string" ? body.scope : null;
          self.expiresAt = target.expiresAt;
          self.scope = target.scope;
          self._emit("preview-minted", { expiresAt: target.expiresAt, scope: target.scope });
          return target;
        });
    }

    _errorDetail(error) {
      if (error instanceof MintError) {
        return { status: error.status, code: error.code, message: error.message, failures: this._failures };
      }
      return { status: 0, code: "error", message: String(error), failures: this._failures };
    }

    _renew(renewal) {
      var generation = ++this._generation;
      if (!this._visible || this._visible.frame.dataset.state === "hidden") {
        this._showStatus(renewal ? "Refreshing preview…" : "Loading preview…");
      }
      var self = this;
      this._mint().then(
        function (target) {
          if (generation === self._generation) {
            self._load(target, renewal);
          }
        },
        function (error) {
          if (generation === self._generation) {
            self._fail(error);
          }
        }
      );
    }

    // Load the new preview hidden; it replaces the visible one once it has loaded.
    _load(target, renewal) {
      this._discardLoading();
      var frame = document.createElement("iframe");
      frame.setAttribute("title", this.getAttribute("title") || "Sandbox preview");
      frame.setAttribute("allow", this.getAttribute("frame-allow") || DEFAULT_ALLOW);
      frame.setAttribute("sandbox", this.getAttribute("frame-sandbox") || DEFAULT_SANDBOX);
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.dataset.state = "loading";
      var loading = { frame: frame, origin: target.origin, renewal: renewal, cookiesBlocked: false };
      var self = this;
      frame.addEventListener("load", function () {
        if (self._loading === loading) {
          self._failures = 0;
          self._show(loading);
          self._emit("preview-ready", { renewal: renewal, expiresAt: target.expiresAt, scope: target.scope });
        }
      });
      frame.src = target.url;
      this._loading = loading;
      this._root.append(frame);
    }

    _show(loading) {
      var previous = this._visible;
      this._loading = null;
      loading.frame.dataset.state = "visible";
      this._visible = loading;
      this._showStatus("");
      if (previous && previous.frame !== loading.frame) {
        previous.frame.remove();
      }
    }

    _discardLoading() {
      if (this._loading) {
        this._loading.frame.remove();
        this._loading = null;
      }
    }

    _fail(error) {
      this._failures += 1;
      var detail = this._errorDetail(error);
      this._emit("preview-error", detail);
      var retryable = !(error instanceof MintError) || error.retryable;
      var limit = Math.max(1, Number(this.getAttribute("max-failures")) || 3);
      if (!retryable || this._failures >= limit) {
        this._stopped = true;
        this._discardLoading();
        if (this._visible) {
          this._visible.frame.remove(); // not a preview of something else than was asked for
          this._visible = null;
        }
        this._showStatus("The preview could not be opened.");
        this._emit("preview-failed", detail);
        return;
      }
      var delay = Math.max(0, Number(this.getAttribute("retry-delay")) || 1000);
      var self = this;
      this._showStatus("Retrying…");
      this._retryTimer = setTimeout(function () {
        self._renew(true);
      }, delay * Math.pow(2, this._failures - 1));
    }

    _onMessage(event) {
      var data = event.data;
      var loading = this._loading;
      var visible = this._visible;
      var fromLoading = !!loading && event.source === loading.frame.contentWindow && event.origin === loading.origin;
      var fromVisible = !!visible && event.source === visible.frame.contentWindow && event.origin === visible.origin;
      if (!fromLoading && !fromVisible) {
        return; // another window, another origin, or a frame this element no longer shows
      }
      if (!data || typeof data !== "object" || !EVENT_TYPES[data.type]) {
        return;
      }
      var detail = {
        type: data.type,
        reason: typeof data.reason === "string" ? data.reason : null,
        sandboxId: typeof data.sandbox_id === "string" ? data.sandbox_id : null,
      };
      this._emit("preview-message", detail);
      var source = fromLoading ? loading : visible;
      if (data.type === "preview.open_in_new_tab") {
        if (source.cookiesBlocked) {
          this.openInNewTab();
        }
        return;
      }
      if (data.type === "preview.expired") {
        if (this._stopped || !this._emit("preview-expired", detail, true)) {
          return;
        }
        if (fromLoading) {
          // a fresh preview that is already expired (clock skew, a very short TTL): a failure
          this._discardLoading();
          this._fail(new MintError("the new preview expired before it showed", 200, "expired", true));
          return;
        }
        source.frame.dataset.state = "hidden"; // the denial page is never left visible
        this._renew(true);
        return;
      }
      if (fromLoading) {
        this._show(loading); // the page explains itself ("Cookies blocked", "Sandbox not responding")
      }
      if (data.type === "preview.denied") {
        if (detail.reason === "cookies_blocked") {
          source.cookiesBlocked = true;
          this._emit("preview-cookies-blocked", detail);
        }
        this._emit("preview-denied", detail);
      } else {
        this._emit("preview-unavailable", detail);
      }
    }
  }

  window.customElements.define(TAG, SandboxPreview);
})();
