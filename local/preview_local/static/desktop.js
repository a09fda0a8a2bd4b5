// The desktop sandbox's root page: noVNC's client, connected by itself to the stream path of this
// host (the session cookie goes with the upgrade). Input is always sent: for a read session the
// RFB server drops it (x11vnc -viewonly), so nothing here decides what reaches the desktop.
// When the stream ends after it was up (the origin closes it when the token expires), the page
// reloads: the data plane then answers with its "session expired" page, which tells the parent.
import RFB from '/novnc/core/rfb.js';

const status = document.getElementById('status');
const label = `${document.body.dataset.sandboxId} (${document.body.dataset.scope})`;
const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
let connected = false;

function show(state) {
  status.dataset.state = state;
  status.textContent = `${label}: ${state}`;
}

const rfb = new RFB(document.getElementById('screen'), `${scheme}//${location.host}/websockify`, {
  wsProtocols: ['binary'],
});
rfb.scaleViewport = true;
rfb.focusOnClick = true;
rfb.addEventListener('connect', () => {
  connected = true;
  show('connected');
});
rfb.addEventListener('disconnect', () => {
  show('disconnected');
  if (connected) setTimeout(() => location.reload(), 300);
});
