/*! preview-embed.js 1.1.1 | <sandbox-preview>: embed a sandbox preview | no dependencies, no build step */
// Usage:
//   <script src="preview-embed-1.1.1.js" integrity="sha384-…" crossorigin="anonymous" defer></script>
//   <sandbox-preview mint-endpoint="/my-backend/preview" sandbox="sbx-abc123" scope="read"
//                    width="960" height="540"></sandbox-preview>
//
// The element POSTs {"sandbox_id", "scope"[, "expires_in"]} (JSON) to `mint-endpoint`, the
// integrator's own backend, which mints with its API key and answers the mint API's JSON
// ({"url", "expires_at", "scope", …}). It frames `url` and listens to messages only from that exact
// origin and that frame (and its own hidden renewal frame).
//
// Renewal (renew="auto", the default): ahead of `expires_at` it mints again through the backend and
// opens the new URL in a hidden frame of the same cookie partition, at the exchange's renewal path
// (/__preview/exchange/__preview/renewed?mt=…). The new session's cookies land in the jar the
// visible preview shares; the exchange's page there posts preview.renewed; the visible document
// keeps running and its next requests carry the new session. Events "preview-renewing",
// "preview-renewed". A renewal that fails (any HTTP error, the network, a refused exchange) is
// retried with backoff; after `max-failures` it raises "preview-failed" (with the code) and, at the
// session's end, the frame shows the data plane's denial page. Never a loop.
//
// Expiry (renew="off", a tab asleep past the end, renewal not done in time): at `expires_at` by its
// own clock (checked again when the tab wakes or the frame takes focus), or at the latest when the
// frame's denial page posts preview.expired, it raises "preview-expired" (cancelable) and, unless
// cancelled, mints again and swaps a new preview in (the 1.0 behaviour).
//
// Trust: a preview.expired for a session the helper knows is still valid is ignored; one expiry is
// handled once; every mint passes a ceiling per minute (`max-mints-per-minute`, default 20).
//   preview.denied       event "preview-denied"; reason cookies_blocked also "preview-cookies-blocked",
//                        and the page's "Open in a new tab" opens a freshly minted URL top-level
//   preview.unavailable  event "preview-unavailable" (origin_unreachable, unavailable)
// Failed first mints (network, 5xx, 429) and previews that expire before they show are retried with
// backoff; after `max-failures` (default 3) in a row, or at once on another 4xx, it stops and
// raises "preview-failed". Other events: "preview-minted", "preview-ready", "preview-error",
// "preview-message". Every event bubbles; `detail` never holds the token or the URL.
(function () {
  "use strict";

  var VERSION = "1.1.1";
  var TAG = "sandbox-preview";
  var EVENT_TYPES = {
    "preview.expired": true,
    "preview.denied": true,
    "preview.unavailable": true,
    "preview.open_in_new_tab": true,
    "preview.renewed": true,
  };
  // The exchange's reserved renewal page: a hidden frame opens the new ?mt= there.
  var RENEWAL_PATH = "/__preview/exchange/__preview/renewed";
  var RENEWAL_TIMEOUT_MS = 15000;
  // The session cookie's Max-Age is whole seconds from the exchange: the browser may drop it up to a
  // second before expires_at. The helper counts the session as ended that second early.
  var EXPIRY_LEAD_MS = 1000;
  var READY_SETTLE_MS = 150;
  var DENIAL_DELAY_MS = 500; // after expires_at, the data plane surely refuses: show its page
  var MINT_WINDOW_MS = 60000;
  var DEFAULT_MINTS_PER_MINUTE = 20;
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
    "iframe[data-state=renewal]{visibility:hidden;pointer-events:none;width:1px;height:1px}" +
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

  var MAX_TIMER_MS = 2147483647; // a longer setTimeout fires at once

  function after(ms, callback) {
    return setTimeout(callback, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
  }

  function later(ms) {
    return new Promise(function (resolve) {
      setTimeout(resolve, ms);
    });
  }

  function epochSeconds(isoTime) {
    var ms = Date.parse(isoTime || "");
    return isNaN(ms) ? null : Math.floor(ms / 1000);
  }

  class SandboxPreview extends HTMLElement {
    static get observedAttributes() {
      return ["mint-endpoint", "sandbox", "scope", "expires-in", "renew", "renew-before"];
    }

    constructor() {
      super();
      this._root = this.attachShadow({ mode: "open" });
      this._generation = 0;
      this._failures = 0;
      this._stopped = false;
      this._visible = null; // {frame, origin, cookiesBlocked, denied}
      this._loading = null; // {frame, origin, renewal, target}
      this._renewal = null; // {frame, origin, target, timer}: the hidden frame of a renewal in flight
      this._session = null; // {expiresAtMs, startedAtMs, ended}: what the helper knows of the shown session
      this._retryTimer = null;
      this._renewTimer = null;
      this._expiryTimer = null;
      this._reloadQueued = false;
      this._mintLog = []; // when each mint of the last minute started
      this._onMessage = this._onMessage.bind(this);
      this._onWake = this._onWake.bind(this);
      this.expiresAt = null;
      this.scope = null;
      this.renewals = 0;
      this.mints = 0;
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

    get renewing() {
      return this._renewMode() === "auto";
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
      // A tab that slept past a timer, or a user about to use the frame: look at the clock again.
      document.addEventListener("visibilitychange", this._onWake);
      window.addEventListener("focus", this._onWake);
      window.addEventListener("blur", this._onWake);
      window.addEventListener("online", this._onWake);
      this.reload();
    }

    disconnectedCallback() {
      window.removeEventListener("message", this._onMessage);
      document.removeEventListener("visibilitychange", this._onWake);
      window.removeEventListener("focus", this._onWake);
      window.removeEventListener("blur", this._onWake);
      window.removeEventListener("online", this._onWake);
      this._generation += 1;
      this._clearTimers();
      this._dropRenewal();
    }

    attributeChangedCallback(name, oldValue, newValue) {
      if (!this.isConnected || oldValue === newValue) {
        return;
      }
      if (name === "renew" || name === "renew-before") {
        this._schedule(); // the same session, another plan
        return;
      }
      this.reload();
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
        self._clearTimers();
        self._dropRenewal();
        self._renew(false);
      });
    }

    // Renew the shown session now, in place (no new document), as the timer would.
    renew() {
      if (this._visible && this._session && !this._stopped) {
        this._renewInPlace();
      }
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

    _renewMode() {
      return (this.getAttribute("renew") || "auto").toLowerCase() === "off" ? "off" : "auto";
    }

    _clearTimers() {
      clearTimeout(this._retryTimer);
      clearTimeout(this._renewTimer);
      clearTimeout(this._expiryTimer);
      this._retryTimer = this._renewTimer = this._expiryTimer = null;
    }

    // How long the next mint must wait: at most `max-mints-per-minute` start in any minute.
    _mintWait() {
      var now = Date.now();
      this._mintLog = this._mintLog.filter(function (started) {
        return now - started < MINT_WINDOW_MS;
      });
      var ceiling = Math.max(1, Number(this.getAttribute("max-mints-per-minute")) || DEFAULT_MINTS_PER_MINUTE);
      return this._mintLog.length < ceiling ? 0 : this._mintLog[0] + MINT_WINDOW_MS - now;
    }

    _mint() {
      var wait = this._mintWait();
      var self = this;
      if (wait > 0) {
        return later(wait).then(function () {
          return self._mint();
        });
      }
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
      this._mintLog.push(Date.now());
      this.mints += 1;
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

    // ------------------------------------------------------------------------ a new document
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
      var loading = { frame: frame, origin: target.origin, renewal: renewal, target: target, cookiesBlocked: false };
      var self = this;
      frame.addEventListener("load", function () {
        if (self._loading === loading) {
          self._failures = 0;
          self._show(loading);
          self._startSession(target);
          // Our own pages ("Sandbox not responding", a denial) post their message as they parse,
          // but the browser may deliver the frame's load event first (they cross processes, in no
          // set order): "ready" waits READY_SETTLE_MS for such a message, which cancels it.
          var shown = self._visible;
          shown.readyTimer = setTimeout(function () {
            shown.readyTimer = null;
            if (self._visible === shown) {
              self._emit("preview-ready", { renewal: renewal, expiresAt: target.expiresAt, scope: target.scope });
            }
          }, READY_SETTLE_MS);
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
      this._visible = { frame: loading.frame, origin: loading.origin, cookiesBlocked: loading.cookiesBlocked, denied: false, readyTimer: null };
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
        this._clearTimers();
        this._discardLoading();
        if (this._visible) {
          this._visible.frame.remove(); // not a preview of something else than was asked for
          this._visible = null;
        }
        this._session = null;
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

    // ------------------------------------------------------------------------ the session shown
    _startSession(target) {
      var expiresAtMs = Date.parse(target.expiresAt || "");
      this.expiresAt = target.expiresAt;
      this.scope = target.scope;
      this._session = { expiresAtMs: isNaN(expiresAtMs) ? null : expiresAtMs, startedAtMs: Date.now(), ended: false };
      this._schedule();
    }

    // Timers for the shown session: renew ahead of its end (renew="auto"), notice its end.
    _schedule() {
      clearTimeout(this._renewTimer);
      clearTimeout(this._expiryTimer);
      this._renewTimer = this._expiryTimer = null;
      var session = this._session;
      if (!session || session.ended || session.expiresAtMs === null) {
        return;
      }
      var self = this;
      var now = Date.now();
      if (this._renewMode() === "auto" && !this._stopped && !this._renewal) {
        this._renewTimer = after(this._renewAt(session) - now, function () {
          self._renewInPlace();
        });
      }
      this._expiryTimer = after(session.expiresAtMs - EXPIRY_LEAD_MS - now, function () {
        self._checkExpiry("clock");
      });
    }

    // When to renew: `renew-before` seconds before the end; else 30% of the lifetime before it,
    // at least 2 s and at most 60 s — but never before half of it (a very short token is not
    // renewed the moment it shows).
    _renewAt(session) {
      var lifetime = session.expiresAtMs - session.startedAtMs;
      var before = Number(this.getAttribute("renew-before"));
      var lead = before > 0 ? before * 1000 : Math.min(60000, Math.max(2000, 0.3 * lifetime));
      return session.expiresAtMs - Math.min(lead, lifetime / 2);
    }

    _onWake() {
      var session = this._session;
      if (document.visibilityState === "hidden" || !session || session.ended || session.expiresAtMs === null) {
        return;
      }
      if (this._renewMode() === "auto" && !this._stopped && !this._renewal && Date.now() >= this._renewAt(session)) {
        this._renewInPlace();
      }
      this._checkExpiry("clock");
    }

    _checkExpiry(source) {
      var session = this._session;
      if (session && !session.ended && session.expiresAtMs !== null && Date.now() >= session.expiresAtMs - EXPIRY_LEAD_MS) {
        this._sessionEnded(source);
      }
    }

    // The shown session has ended (by the helper's clock, or the frame's denial page said so). Once.
    _sessionEnded(source) {
      var session = this._session;
      if (!session || session.ended) {
        return;
      }
      session.ended = true;
      clearTimeout(this._expiryTimer);
      if (this._stopped) {
        this._showDenial(); // renewal failed for good: preview-failed was raised already
        return;
      }
      if (this._renewal) {
        return; // a renewal is in flight: its outcome decides (a late success revives the frame)
      }
      clearTimeout(this._renewTimer);
      var detail = { type: "preview.expired", reason: "expired", sandboxId: null, source: source };
      if (!this._emit("preview-expired", detail, true)) {
        return; // the page handles it (its frame shows the denial page on its next navigation)
      }
      if (this._visible) {
        this._visible.frame.dataset.state = "hidden"; // the denial page is never left visible
      }
      this._renew(true);
    }

    // The data plane's own page for the ended session, in the visible frame, once the data plane
    // surely refuses it (no loop: the helper is stopped and ignores what that page posts).
    _showDenial() {
      var visible = this._visible;
      var session = this._session;
      var self = this;
      var wait = session && session.expiresAtMs !== null ? session.expiresAtMs + DENIAL_DELAY_MS - Date.now() : 0;
      if (wait > 0) {
        clearTimeout(this._expiryTimer);
        this._expiryTimer = setTimeout(function () {
          self._showDenial();
        }, wait);
        return;
      }
      this._showStatus("");
      if (visible && !visible.denied) {
        visible.denied = true;
        visible.frame.dataset.state = "visible";
        visible.frame.src = visible.origin + "/";
      }
    }

    // ------------------------------------------------------------------------ renewal in place
    _renewInPlace() {
      if (this._stopped || this._renewal || !this._visible || !this._session) {
        return;
      }
      clearTimeout(this._renewTimer);
      this._renewTimer = null;
      var renewal = { frame: null, origin: null, target: null, timer: null };
      this._renewal = renewal;
      var generation = this._generation;
      var self = this;
      this._emit("preview-renewing", { expiresAt: this.expiresAt, failures: this._failures });
      this._mint().then(
        function (target) {
          if (generation !== self._generation || self._renewal !== renewal) {
            return;
          }
          if (target.origin !== self._visible.origin) {
            // Another host cannot share the frame's cookie jar: show it as a new document.
            self._renewal = null;
            self._load(target, true);
            return;
          }
          var url = new URL(target.url);
          url.pathname = RENEWAL_PATH;
          url.hash = "";
          var frame = document.createElement("iframe");
          frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
          frame.setAttribute("referrerpolicy", "no-referrer");
          frame.setAttribute("aria-hidden", "true");
          frame.setAttribute("tabindex", "-1");
          frame.setAttribute("title", "Preview renewal");
          frame.dataset.state = "renewal";
          renewal.frame = frame;
          renewal.origin = target.origin;
          renewal.target = target;
          renewal.timer = setTimeout(function () {
            self._renewalFailed(renewal, new MintError("the renewal did not complete", 0, "renewal_timeout", true));
          }, RENEWAL_TIMEOUT_MS);
          frame.src = url.href;
          self._root.append(frame);
        },
        function (error) {
          if (generation === self._generation) {
            self._renewalFailed(renewal, error);
          }
        }
      );
    }

    _dropRenewal() {
      var renewal = this._renewal;
      this._renewal = null;
      if (renewal) {
        clearTimeout(renewal.timer);
        if (renewal.frame) {
          renewal.frame.remove();
        }
      }
    }

    _renewalSucceeded(renewal) {
      this._dropRenewal();
      this._failures = 0;
      this.renewals += 1;
      var visible = this._visible;
      this._startSession(renewal.target);
      if (visible && visible.denied) {
        // the frame fell on the denial page before the renewal landed: open the page again
        visible.denied = false;
        visible.frame.dataset.state = "visible";
        visible.frame.src = visible.origin + "/";
      }
      this._emit("preview-renewed", { expiresAt: this.expiresAt, scope: this.scope, renewals: this.renewals });
    }

    _renewalFailed(renewal, error) {
      if (this._renewal !== renewal) {
        return;
      }
      this._dropRenewal();
      this._failures += 1;
      var detail = this._errorDetail(error);
      detail.renewal = true;
      this._emit("preview-error", detail);
      var limit = Math.max(1, Number(this.getAttribute("max-failures")) || 3);
      var self = this;
      if (this._failures < limit) {
        var delay = Math.max(0, Number(this.getAttribute("retry-delay")) || 1000);
        this._retryTimer = setTimeout(function () {
          self._renewInPlace();
        }, delay * Math.pow(2, this._failures - 1));
        return;
      }
      this._stopped = true;
      clearTimeout(this._renewTimer);
      this._emit("preview-failed", detail);
      var session = this._session;
      if (session && session.ended) {
        this._showDenial();
      }
      // else: the current session still holds; at its end the frame shows the denial page
    }

    // ------------------------------------------------------------------------ messages
    _onMessage(event) {
      var data = event.data;
      var loading = this._loading;
      var visible = this._visible;
      var renewal = this._renewal;
      var fromLoading = !!loading && event.source === loading.frame.contentWindow && event.origin === loading.origin;
      var fromVisible = !!visible && event.source === visible.frame.contentWindow && event.origin === visible.origin;
      var fromRenewal =
        !!renewal && !!renewal.frame && event.source === renewal.frame.contentWindow && event.origin === renewal.origin;
      if (!fromLoading && !fromVisible && !fromRenewal) {
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
      if (fromRenewal) {
        this._emit("preview-message", detail);
        this._onRenewalMessage(renewal, data, detail);
        return;
      }
      if (data.type === "preview.renewed") {
        detail.ignored = true; // only the renewal frame can say that
        this._emit("preview-message", detail);
        return;
      }
      if (data.type === "preview.expired" && fromLoading && Date.now() < Date.parse(loading.target.expiresAt || "") - EXPIRY_LEAD_MS) {
        detail.ignored = true; // a fresh preview the helper knows is valid: nothing to retry
        this._emit("preview-message", detail);
        return;
      }
      var session = this._session;
      if (
        data.type === "preview.expired" &&
        fromVisible &&
        session &&
        (session.ended || (session.expiresAtMs !== null && Date.now() < session.expiresAtMs - EXPIRY_LEAD_MS))
      ) {
        // Still valid by what the helper knows (the sandbox's own page can post this), or an end
        // already handled: nothing to do, nothing to mint.
        detail.ignored = true;
        this._emit("preview-message", detail);
        if (session.ended) {
          visible.denied = true; // the frame shows the denial page: a late renewal opens the page again
        }
        return;
      }
      this._emit("preview-message", detail);
      var source = fromLoading ? loading : visible;
      if (!fromLoading && visible.readyTimer) {
        clearTimeout(visible.readyTimer); // the page that loaded is ours, explaining itself: not ready
        visible.readyTimer = null;
      }
      if (data.type === "preview.open_in_new_tab") {
        if (source.cookiesBlocked) {
          this.openInNewTab();
        }
        return;
      }
      if (data.type === "preview.expired") {
        if (this._stopped) {
          return;
        }
        if (fromLoading) {
          // a fresh preview that is already expired (clock skew, a very short TTL): a failure
          if (!this._emit("preview-expired", detail, true)) {
            return;
          }
          this._discardLoading();
          this._fail(new MintError("the new preview expired before it showed", 200, "expired", true));
          return;
        }
        visible.denied = true;
        this._sessionEnded("frame");
        return;
      }
      if (fromLoading) {
        this._show(loading); // the page explains itself ("Cookies blocked", "Sandbox not responding")
        this._startSession(loading.target);
      }
      if (data.type === "preview.denied") {
        if (detail.reason === "cookies_blocked") {
          source.cookiesBlocked = true;
          if (this._visible) {
            this._visible.cookiesBlocked = true;
          }
          this._clearTimers(); // nothing to renew in this frame: its cookie never stuck
          this._session = null;
          this._emit("preview-cookies-blocked", detail);
        }
        this._emit("preview-denied", detail);
      } else {
        this._emit("preview-unavailable", detail);
      }
    }

    _onRenewalMessage(renewal, data, detail) {
      if (data.type === "preview.renewed") {
        var expected = epochSeconds(renewal.target.expiresAt);
        if (typeof data.expires_at === "number" && (expected === null || Math.abs(data.expires_at - expected) <= 1)) {
          this._renewalSucceeded(renewal);
        } else {
          this._renewalFailed(renewal, new MintError("the new session did not reach the frame", 0, "renewal_not_applied", true));
        }
        return;
      }
      // the exchange refused the new token (expired, revoked, cookies blocked, unavailable)
      this._renewalFailed(renewal, new MintError("the exchange refused the renewal", 403, detail.reason || "denied", true));
    }
  }

  window.customElements.define(TAG, SandboxPreview);
})();
