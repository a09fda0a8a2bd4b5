// An integrator's backend for <sandbox-preview>, Node.js (18+) standard library only.
//
//   node docs/embed/backend.mjs              # against `make run` (reads .local/demo.json)
//   PREVIEW_API_URL=https://api.example.com PREVIEW_API_KEY=msk_... PREVIEW_SANDBOXES=sbx-1 \
//   PREVIEW_FRAME_SRC='https://*.sandboxes.example.com' PORT=8080 node docs/embed/backend.mjs
//
// It serves a page with the embed helper and POST /my-backend/preview, which mints a preview
// token with the API key (it never reaches the browser) and answers the mint API's JSON. Decide
// there whether the signed-in user may see the sandbox; this example allows a fixed list.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const helper = readFileSync(join(here, "preview-embed.js"));
const version = /var VERSION = "([0-9.]+)";/.exec(helper.toString("utf8"))[1];
const helperPath = `/preview-embed-${version}.js`;
const integrity = "sha384-" + createHash("sha384").update(helper).digest("base64");

function loadSettings() {
  const env = process.env;
  if (env.PREVIEW_API_KEY) {
    return {
      apiUrl: env.PREVIEW_API_URL.replace(/\/$/, ""),
      apiKey: env.PREVIEW_API_KEY,
      sandboxes: env.PREVIEW_SANDBOXES.split(","),
      frameSrc: env.PREVIEW_FRAME_SRC,
    };
  }
  const demoFile = env.PREVIEW_LOCAL_DEMO_JSON || join(here, "..", "..", ".local", "demo.json");
  const demo = JSON.parse(readFileSync(demoFile, "utf8"));
  return {
    apiUrl: demo.api_url,
    apiKey: demo.api_key,
    sandboxes: demo.sandbox_ids,
    frameSrc: `http://*.${demo.preview_domain}:${demo.port}`,
  };
}

const settings = loadSettings();

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function mint(sandboxId, scope, expiresIn) {
  const body = {};
  if (scope !== undefined) body.scope = scope;
  if (expiresIn !== undefined) body.expires_in = expiresIn;
  let response;
  try {
    response = await fetch(
      `${settings.apiUrl}/api/v1/sandboxes/${encodeURIComponent(sandboxId)}/preview-token`,
      {
        method: "POST",
        headers: { Authorization: `Bearer ${settings.apiKey}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      }
    );
  } catch {
    return [502, { error: { code: "mint_unreachable", message: "the preview API did not answer" } }];
  }
  const document = await response.json().catch(() => ({}));
  if (response.status !== 200) return [response.status, document];
  return [200, { url: document.url, expires_at: document.expires_at, scope: document.scope }];
}

function reply(res, status, body, contentType) {
  res.writeHead(status, {
    "Content-Type": contentType,
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
    "Content-Security-Policy": `default-src 'self'; img-src 'self' data:; frame-src ${settings.frameSrc}; base-uri 'none'; form-action 'none'`,
  });
  res.end(body);
}

const server = createServer((req, res) => {
  if (req.method === "GET" && req.url === helperPath) {
    return reply(res, 200, helper, "text/javascript; charset=utf-8");
  }
  if (req.method === "GET" && req.url === "/") {
    const page = readFileSync(join(here, "example.html"), "utf8")
      .replace("{{script_path}}", escapeHtml(helperPath))
      .replace("{{script_integrity}}", escapeHtml(integrity))
      .replace("{{sandbox_id}}", escapeHtml(settings.sandboxes[0]));
    return reply(res, 200, page, "text/html; charset=utf-8");
  }
  if (req.method === "POST" && req.url === "/my-backend/preview") {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", async () => {
      let wanted = null;
      try {
        wanted = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        wanted = null;
      }
      if (!wanted || typeof wanted !== "object" || !settings.sandboxes.includes(wanted.sandbox_id)) {
        const denied = { error: { code: "forbidden", message: "not your sandbox" } };
        return reply(res, 403, JSON.stringify(denied), "application/json");
      }
      const [status, document] = await mint(wanted.sandbox_id, wanted.scope, wanted.expires_in);
      reply(res, status, JSON.stringify(document), "application/json");
    });
    return undefined;
  }
  return reply(res, 404, "not found", "text/plain");
});

server.listen(Number(process.env.PORT || 8080), "127.0.0.1", () => {
  console.log(`example backend on http://127.0.0.1:${server.address().port}/`);
});
process.on("SIGTERM", () => process.exit(0));
