// PreviewEdge, viewer request (docs/architecture.md); `make edge` copies it into template.yaml.
// Mirror: local/preview_local/edge.py.
import cf from 'cloudfront';
import crypto from 'crypto';

var kvs = cf.kvs();
var OURS = /^__host-mp_/i;
var READ = ['GET', 'HEAD', 'OPTIONS'];
var HEADER_NAMES = ['alg', 'kid', 'typ'];
var SEGMENT = /^[A-Za-z0-9_-]+$/;
var KID = /^[A-Za-z0-9_-]{1,128}$/;
var SANDBOX = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
var ASCII = /^[\x00-\x7f]*$/;
var CONTROL = /[\x00-\x1f\x7f]/;
var PERCENT = /%[0-9A-Fa-f]{2}/;
var PERCENT_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
// NFKC lookalikes of . / \ ; % (access.NFKC_LOOKALIKES; a test keeps them equal).
var FOLD = {'\u037e': ';', '\u2024': '.', '\u2025': '..', '\u2026': '...', '\u2100': 'a/c', '\u2101': 'a/s',
  '\u2105': 'c/o', '\u2106': 'c/u', '\u33c2': 'a.m.', '\u33c7': 'Co.', '\u33d8': 'p.m.', '\ufe14': ';',
  '\ufe19': '...', '\ufe30': '..', '\ufe52': '.', '\ufe54': ';', '\ufe68': '\\', '\ufe6a': '%',
  '\uff05': '%', '\uff0e': '.', '\uff0f': '/', '\uff1b': ';', '\uff3c': '\\', '\ud83c\udd00': '0.'};
for (var n = 1; n <= 20; n++) FOLD[String.fromCharCode(0x2487 + n)] = n + '.';
var FOLDS = /[\u037e\u2024-\u2026\u2100\u2101\u2105\u2106\u2488-\u249b\u33c2\u33c7\u33d8\ufe14\ufe19\ufe30\ufe52\ufe54\ufe68\ufe6a\uff05\uff0e\uff0f\uff1b\uff3c]|\ud83c\udd00/g;
// Printable ASCII but % ; \: nothing to fold or decode.
var PLAIN = /^[!-$&-:<-\[\]-~]*$/;
var INPUT = segments('${InputPathPrefix}');
var FIRST = INPUT && typeof INPUT[0] === 'string' ? INPUT[0] : null;

// Canonical base64url: no unused bits set in the last character.
var TAIL = { 2: 'AQgw', 3: 'AEIMQUYcgkosw048' };
function b64(text) {
  if (typeof text !== 'string' || !SEGMENT.test(text)) return null;
  var rest = text.length % 4;
  if (rest === 1 || (rest > 1 && TAIL[rest].indexOf(text.slice(-1)) < 0)) return null;
  return Buffer.from(text, 'base64url');
}
// Read as Latin-1 (cheaper than UTF-8): mint writes ASCII JSON (json.dumps escapes the rest), and a
// non-ASCII byte then only spoils a string no check accepts.
function jsonOf(text) {
  var raw = b64(text);
  if (raw === null) return null;
  try { var value = JSON.parse(raw.toString('latin1')); } catch (e) { return null; }
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : null;
}
// Constant time; b is the canonical spelling, so a must be too.
function same(a, b) {
  if (a.length !== b.length) return false;
  var diff = 0;
  for (var i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
function values(entry) {
  if (!entry) return [];
  var m = entry.multiValue;
  return (m && m.length ? m : [entry]).map(function (v) { return String(v.value || ''); });
}
// The last value, '' without one.
function last(entry) {
  if (!entry) return '';
  var m = entry.multiValue;
  return String((m && m.length ? m[m.length - 1] : entry).value || '');
}
// Cookie and header names are spelled out where they are read, not held in variables or looped over:
// node looks a literal name up through a cache of its own (a loop over the names cost 5% of a request).
function cookie(entry) {
  var v = last(entry).trim();
  return v.indexOf('"') < 0 ? v : v.replace(/^"+|"+$/g, '');
}
function hostName(host) {
  host = host.trim().toLowerCase();
  var colon = host.lastIndexOf(':');
  return colon >= 0 && /^[0-9]+$/.test(host.slice(colon + 1)) ? host.slice(0, colon) : host;
}
// The path as the most lenient server reads it (access.input_path_segments): null = ambiguous,
// a null segment = non-ASCII, a wildcard.
function segments(path) {
  var decoded = path || '/';
  var plain = PLAIN.test(decoded);
  for (var n = 0; !plain; n++) {
    decoded = decoded.replace(FOLDS, function (c) { return FOLD[c]; });
    if (CONTROL.test(decoded)) return null;
    if (!PERCENT.test(decoded)) break;
    if (n === 3) return null;
    try { decoded = decoded.replace(PERCENT_RUN, decodeURIComponent); } catch (e) { return null; }
  }
  var out = [];
  var parts = (plain ? decoded : decoded.replace(/\\/g, '/')).split('/');
  for (var i = 0; i < parts.length; i++) {
    var segment = plain ? parts[i] : parts[i].split(';')[0];
    if (segment === '' || segment === '.') continue;
    if (segment === '..') { out.pop(); continue; }
    var trimmed = plain && segment.slice(-1) !== '.' ? segment : segment.replace(/^ +| +$/g, '').replace(/[. ]+$/, '');
    if (!trimmed) return null;
    out.push(plain || ASCII.test(trimmed) ? trimmed.toLowerCase() : null);
  }
  return out;
}
// A method-override header's values (none: undefined) name only read methods.
function overridesRead(entry) {
  if (entry === undefined) return true;
  var named = values(entry);
  for (var v = 0; v < named.length; v++) if (READ.indexOf(named[v].trim().toUpperCase()) < 0) return false;
  return true;
}
function readAllows(request) {
  var method = request.method, headers = request.headers, uri = request.uri;
  if (method !== 'GET' && method !== 'HEAD' && READ.indexOf(method.toUpperCase()) < 0) return false;
  if (!overridesRead(headers['x-http-method-override']) || !overridesRead(headers['x-method-override'])
    || !overridesRead(headers['x-http-method'])) return false;
  // Origin form without a fragment only (access.read_scope_allows): a server may cut a path at '#'.
  if (uri.charCodeAt(0) !== 47 || uri.indexOf('#') >= 0) return false;
  // A plain path's segments are pieces of it: without the prefix's first, none is input.
  if (FIRST !== null && PLAIN.test(uri) && uri.toLowerCase().indexOf(FIRST) < 0) return true;
  var path = segments(uri);
  if (path === null) return false;
  if (path.length < INPUT.length) return true;
  for (var i = 0; i < INPUT.length; i++) if (path[i] !== null && path[i] !== INPUT[i]) return true;
  return false;
}
function filled(v) { return typeof v === 'string' && v !== ''; }
function claimsOf(text) {
  var p = jsonOf(text);
  if (p === null) return null;
  if (!filled(p.aud) || !filled(p.sub) || !filled(p.tid) || !filled(p.jti)) return null;
  if (!Number.isInteger(p.iat) || !Number.isInteger(p.exp)) return null;
  if (p.scope !== 'read' && p.scope !== 'interact') return null;
  if (!SANDBOX.test(p.sub) || p.aud.indexOf(p.sub + '.') !== 0) return null;
  return p;
}
// The header as mint writes it, else parsed.
var HEADER = /^\{"alg":"HS256","kid":"([A-Za-z0-9_-]{1,128})","typ":"JWT"\}$/;
function kidOf(text) {
  var raw = b64(text);
  var m = raw && HEADER.exec(raw.toString('latin1'));
  if (m) return m[1];
  var header = jsonOf(text);
  if (header === null) return null;
  for (var name in header) if (HEADER_NAMES.indexOf(name) < 0) return null;
  if (header.alg !== 'HS256' || ('typ' in header && header.typ !== 'JWT')) return null;
  return typeof header.kid === 'string' && KID.test(header.kid) ? header.kid : null;
}
// The decision once the session's key is read (stored: the KeyValueStore's value, or null).
function verdict(request, token, parts, stored, now) {
  if (typeof stored !== 'string' || stored === '') return bad();
  var key = Buffer.from(stored, 'base64url');  // ours: a bad value is a wrong key
  var expected = crypto.createHmac('sha256', key).update(token.slice(3, token.lastIndexOf('.'))).digest('base64url');
  if (!same(parts[2], expected)) return bad();
  var claims = claimsOf(parts[1]);
  if (claims === null) return bad();
  if (claims.exp <= now) return { reason: 'expired', claims: claims };
  if (claims.aud !== hostName(last(request.headers.host))) return { reason: 'wrong_sandbox', claims: claims };
  if (claims.scope === 'read' && !readAllows(request)) return { reason: 'read_only', claims: claims };
  // The exchange's origin assertion for this session; the ingress checks it names claims.jti.
  var assertion = cookie(request.cookies['__Host-mp_origin']);
  return assertion ? { claims: claims, assertion: assertion } : bad();
}
function bad() { return { reason: 'invalid_token' }; }
function formDecode(text) {
  return text.replace(/\+/g, ' ').replace(/%([0-9A-Fa-f]{2})/g, function (m, hex) {
    return String.fromCharCode(parseInt(hex, 16));
  });
}
// Parameters API Gateway decodes to mt leave the query: one usable value goes on in
// x-preview-token, several or an unusable one as 'invalid' (never verifies).
function takeToken(request) {
  var raw = request.rawQueryString();
  if (!raw || (raw.indexOf('%') < 0 && raw.indexOf('mt') < 0)) return false;
  var kept = [], found = [];
  raw.split('&').forEach(function (piece) {
    var eq = piece.indexOf('=');
    if (formDecode(eq < 0 ? piece : piece.substring(0, eq)) === 'mt') found.push(eq < 0 ? '' : formDecode(piece.substring(eq + 1)));
    else kept.push(piece);
  });
  if (found.length === 0) return false;
  if (found.length === 1 && /^[\x21-\x2b\x2d-\x7e]+$/.test(found[0])) request.headers['x-preview-token'] = { value: found[0] };
  else if (found.length > 1 || found[0] !== '') request.headers['x-preview-token'] = { value: 'invalid' };
  request.querystring = kept.join('&');
  return true;
}
async function handler(event) {
  var request = event.request;
  if (typeof request.rawQueryString !== 'function') return { statusCode: 503, statusDescription: 'Service Unavailable' };
  var headers = request.headers;
  // Ours to set (preview_local.edge.EDGE_HEADERS; a test sends every one): never the viewer's.
  if ('x-preview-token' in headers) delete headers['x-preview-token'];
  if ('x-preview-assertion' in headers) delete headers['x-preview-assertion'];
  if ('x-preview-denial' in headers) delete headers['x-preview-denial'];
  if ('x-preview-denial-sandbox' in headers) delete headers['x-preview-denial-sandbox'];
  if ('x-preview-ingress-secret' in headers) delete headers['x-preview-ingress-secret'];
  if ('x-sandbox-id' in headers) delete headers['x-sandbox-id'];
  if ('x-preview-scope' in headers) delete headers['x-preview-scope'];
  if ('x-preview-expires' in headers) delete headers['x-preview-expires'];
  if ('x-preview-token-id' in headers) delete headers['x-preview-token-id'];
  var uri = request.uri;
  var reserved = uri.indexOf('/__preview/') === 0;
  if (takeToken(request) || reserved) {
    if (!reserved && request.method === 'GET') request.uri = '/__preview/exchange' + (uri === '/' ? '' : uri);
    return request;
  }
  var now = Math.floor(Date.now() / 1000), decision, token = cookie(request.cookies['__Host-mp_session']);
  if (!token) {
    var ends = cookie(request.cookies['__Host-mp_session_ends']);
    decision = { reason: /^[0-9]{1,15}$/.test(ends) && Number(ends) <= now ? 'expired' : 'no_token' };
  } else {
    // Three segments; one that is not base64url fails in verdict, so the characters need no other check.
    var dot = token.indexOf('.'), dot2 = token.indexOf('.', dot + 1);
    var three = dot > 0 && dot2 > 0 && token.indexOf('.', dot2 + 1) < 0;
    var parts = three && token.indexOf('mp_') === 0 && token.length <= 4096
      ? [token.slice(3, dot), token.slice(dot + 1, dot2), token.slice(dot2 + 1)] : [];
    var stored = null;
    // The key under the header segment its tokens start with (edge_store.signing_key_entries: the
    // header mint writes, HS256), so no header is decoded; else by the kid the header names.
    if (parts.length === 3) try { stored = await kvs.get('hs.' + parts[0]); } catch (e) {
      var kid = kidOf(parts[0]);
      if (kid !== null) try { stored = await kvs.get('key.' + kid); } catch (e2) { stored = null; }
    }
    decision = verdict(request, token, parts, stored, now);
  }
  if (decision.reason) {
    request.uri = '/__preview/denied';
    request.querystring = {};
    headers['x-preview-denial'] = { value: decision.reason };
    if (decision.claims) headers['x-preview-denial-sandbox'] = { value: decision.claims.sub };
    return request;
  }
  var cookies = {};
  for (var name in request.cookies) if (!OURS.test(name)) cookies[name] = request.cookies[name];
  request.cookies = cookies;
  headers['x-preview-assertion'] = { value: decision.assertion };
  headers['x-preview-token-id'] = { value: decision.claims.jti };
  cf.selectRequestOriginById('fleet-ingress');
  return request;
}
