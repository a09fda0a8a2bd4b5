// The desktop sandbox's root page: noVNC's client, connected by itself to the stream path of this
// host (the session cookie goes with the upgrade). Input is always sent: for a read session the
// RFB server drops it (x11vnc -viewonly), so nothing here decides what reaches the desktop.
// A stream ends at its token's exp (the data plane closes it). The embed helper renews the session
// in place before then, so the page reconnects at once on the new session's cookie, in the same
// document: the canvas is live again in well under 2 s. Only when reconnecting keeps failing (no
// renewal: renewal off, a tab asleep, a failed renewal) does the page reload: the data plane then
// answers its "session expired" page, which tells the parent.
import RFB from '/novnc/core/rfb.js';

const status = document.getElementById('status');
const screen = document.getElementById('screen');
const label = `${document.body.dataset.sandboxId} (${document.body.dataset.scope})`;
const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/websockify`;
const RETRY_DELAYS_MS = [100, 400, 1000];
let failures = 0;
let everConnected = false;

function show(state) {
  status.dataset.state = state;
  status.dataset.connections = String(Number(status.dataset.connections || 0) + (state === 'connected' ? 1 : 0));
  status.textContent = `${label}: ${state}`;
}

function connect() {
  const rfb = new RFB(screen, url, { wsProtocols: ['binary'] });
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  let up = false;
  rfb.addEventListener('connect', () => {
    up = true;
    everConnected = true;
    failures = 0;
    show('connected');
  });
  rfb.addEventListener('disconnect', () => {
    show('disconnected');
    if (!up) failures += 1;
    if (failures >= RETRY_DELAYS_MS.length) {
      if (everConnected) location.reload(); // let the data plane say why (expired, revoked)
      return;
    }
    setTimeout(connect, up ? 0 : RETRY_DELAYS_MS[failures]);
  });
}

connect();
