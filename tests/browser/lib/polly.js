// Shared helpers of the browser tests: the stack's addresses, request recording, axe-core,
// screenshots, the emulator's mail and table, and a ZIP directory reader.
// @ts-check
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const zlib = require('node:zlib');
const { expect } = require('@playwright/test');
const axe = require('axe-core');

const BASE = mustEnv('POLLY_BASE_URL').replace(/\/$/, '');
const MOTO = mustEnv('POLLY_MOTO_URL').replace(/\/$/, '');
// The table of the stack under test (`<stack>-table`), for waiting on the simulated call.
const STACK = process.env.POLLY_STACK_NAME || '';
const SHOTS = path.resolve(process.env.POLLY_SCREENSHOT_DIR || 'screenshots');
const BASE_ORIGIN = new URL(BASE).origin;
const MOTO_ORIGIN = new URL(MOTO).origin;

const LANGS = /** @type {const} */ (['de', 'en']);
const WIDTHS = /** @type {const} */ ([1280, 360]);
const HEIGHT = { 1280: 800, 360: 740 };
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

/** The exact policy every page response carries (the contract of `web::headers`). */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The request types of the privacy center, as the JSON API names them. */
const TYPES = [
  'access',
  'portability',
  'rectification',
  'erasure',
  'restriction',
  'objection',
  'withdraw_consent',
];

function mustEnv(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run the browser tests through tests/it/browser.rs`);
  }
  return v;
}

/** "" for German, "/en" for English. */
function prefix(lang) {
  return lang === 'en' ? '/en' : '';
}

/** A unique address at example.org for one flow (no real person's data). */
function uniqueEmail(tag) {
  return `${tag}-${crypto.randomBytes(5).toString('hex')}@example.org`;
}

/** A unique German mobile number for one flow. */
function uniquePhone() {
  const digits = String(crypto.randomInt(1_000_000, 9_999_999));
  return `0170 ${digits}`;
}

/**
 * A browser context whose every request is recorded (URL, method, all headers) and whose
 * every response's headers are kept, for the origin, token and Referer checks.
 * @param {import('@playwright/test').Browser} browser
 * @param {{ js?: boolean, width?: number }} [opts]
 */
async function recordedContext(browser, opts = {}) {
  const width = opts.width ?? 1280;
  const context = await browser.newContext({
    baseURL: BASE,
    javaScriptEnabled: opts.js ?? true,
    viewport: { width, height: HEIGHT[width] ?? 800 },
    acceptDownloads: true,
    locale: 'de-DE',
  });
  /** @type {{url: string, method: string, headers: Record<string,string>}[]} */
  const requests = [];
  /** @type {{url: string, status: number, headers: Record<string,string>, setCookies: string[]}[]} */
  const responses = [];
  const pending = [];
  context.on('request', (req) => {
    pending.push(
      req
        .allHeaders()
        .catch(() => req.headers())
        .then((headers) => requests.push({ url: req.url(), method: req.method(), headers })),
    );
  });
  context.on('response', (res) => {
    pending.push(
      res
        .headersArray()
        .then((arr) => {
          const headers = {};
          const setCookies = [];
          for (const { name, value } of arr) {
            const n = name.toLowerCase();
            if (n === 'set-cookie') setCookies.push(...value.split('\n'));
            headers[n] = headers[n] ? `${headers[n]}, ${value}` : value;
          }
          responses.push({
            url: res.url(),
            status: res.status(),
            headers,
            setCookies,
            document: res.request().resourceType() === 'document',
          });
        })
        .catch(() => {}),
    );
  });
  const settle = async () => {
    while (pending.length) await pending.splice(0).reduce((a, p) => a.then(() => p), Promise.resolve());
  };
  return { context, requests, responses, settle };
}

/**
 * Every request went to the stack: the gateway's origin, and the emulator's only for the
 * export's download (its presigned S3 URL) when `downloads` names it.
 */
function expectOnlyStack(requests, downloads = []) {
  const allowed = new Set(downloads.map((u) => new URL(u).href));
  for (const r of requests) {
    const origin = new URL(r.url).origin;
    if (origin === BASE_ORIGIN) continue;
    if (origin === MOTO_ORIGIN && allowed.has(new URL(r.url).href)) continue;
    throw new Error(`a request left the stack: ${r.method} ${origin}${new URL(r.url).pathname}`);
  }
}

/** The token never in a URL the browser requested, never in a Referer, and no Referer at all. */
function expectTokenNowhere(requests, token, pageUrls) {
  expect(token.length).toBeGreaterThan(10);
  for (const r of requests) {
    expect(r.url, 'request URL carries the token').not.toContain(token);
    expect(r.url, 'request URL carries the token (URL-encoded)').not.toContain(encodeURIComponent(token));
    // Chromium reports a withheld Referer as an empty one.
    expect(r.headers.referer ?? '', `a Referer was sent with ${new URL(r.url).pathname}`).toBe('');
  }
  for (const u of pageUrls) expect(u).not.toContain(token);
}

/** The security headers every page response carries (exact). */
function expectPageHeaders(headers, what) {
  expect(headers['content-security-policy'], `${what}: CSP`).toBe(CSP);
  expect(headers['referrer-policy'], `${what}: Referrer-Policy`).toBe('no-referrer');
  expect(headers['x-robots-tag'], `${what}: X-Robots-Tag`).toBe('noindex, nofollow');
  expect(headers['x-content-type-options'], `${what}: X-Content-Type-Options`).toBe('nosniff');
  expect(headers['x-frame-options'], `${what}: X-Frame-Options`).toBe('DENY');
  expect(headers['cache-control'], `${what}: Cache-Control`).toBe('no-store');
  expect(headers['content-type'], `${what}: Content-Type`).toBe('text/html; charset=utf-8');
  expect(headers['permissions-policy'], `${what}: Permissions-Policy`).toBe(
    'camera=(), microphone=(), geolocation=()',
  );
}

/** No cookie other than `polly_request` was ever set, by any response. */
function expectOnlyRequestCookie(responses) {
  for (const r of responses) {
    for (const c of r.setCookies) {
      const name = c.split('=')[0].trim();
      expect(name, `cookie set by ${new URL(r.url).pathname}`).toBe('polly_request');
    }
  }
}

/** One `Set-Cookie: polly_request=…` header's attributes; returns the value. */
function checkCookieAttributes(set, requestId) {
  const parts = set.split(';').map((p) => p.trim());
  const attrs = new Map(
    parts.slice(1).map((p) => {
      const [k, ...v] = p.split('=');
      return [k.toLowerCase(), v.join('=')];
    }),
  );
  expect(attrs.has('httponly'), 'HttpOnly').toBe(true);
  expect(attrs.has('secure'), 'Secure').toBe(true);
  expect(attrs.get('samesite')).toBe('Strict');
  expect(attrs.get('path')).toBe('/');
  expect(attrs.has('domain'), 'no Domain attribute (host-only)').toBe(false);
  const maxAge = Number(attrs.get('max-age'));
  expect(maxAge).toBeGreaterThan(0);
  // No request lives longer than three months (Art. 12(3): one month, extended by two).
  expect(maxAge).toBeLessThanOrEqual(92 * 24 * 3600);
  const value = parts[0].slice('polly_request='.length);
  expect(value.startsWith(`${requestId}.`), 'cookie value = <id>.<token>').toBe(true);
  return value;
}

/**
 * The `polly_request` cookie as sent (Set-Cookie) and as kept (the browser's jar):
 * HttpOnly, Secure, SameSite=Strict, Path=/, a bounded Max-Age; returns its token part.
 */
async function expectRequestCookie(context, responses, requestId) {
  const sets = responses.flatMap((r) => r.setCookies).filter((c) => c.startsWith('polly_request='));
  expect(sets.length, 'a Set-Cookie polly_request').toBeGreaterThan(0);
  let value = '';
  for (const set of sets) value = checkCookieAttributes(set, requestId);

  const jar = await context.cookies();
  expect(jar.map((c) => c.name)).toEqual(['polly_request']);
  const [c] = jar;
  expect(c.httpOnly).toBe(true);
  expect(c.secure).toBe(true);
  expect(c.sameSite).toBe('Strict');
  expect(c.path).toBe('/');
  expect(c.domain).toBe(new URL(BASE).hostname);
  expect(c.value).toBe(value);
  return value.slice(requestId.length + 1);
}

/** axe-core in the page (injected over the DevTools protocol, so the page's CSP holds). */
async function axeCheck(page, what) {
  const hasAxe = await page.evaluate('typeof window.axe === "object"');
  if (!hasAxe) await page.evaluate(axe.source);
  const result = /** @type {any} */ (
    await page.evaluate(
      (tags) => /** @type {any} */ (window).axe.run(document, { runOnly: { type: 'tag', values: tags } }),
      AXE_TAGS,
    )
  );
  const violations = result.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
  expect(violations, `axe-core violations on ${what}`).toEqual([]);
  return { violations: result.violations.length, passes: result.passes.length, incomplete: result.incomplete.length };
}

/** The page does not scroll sideways. */
async function expectNoHorizontalScroll(page, what) {
  const { scroll, client } = await page.evaluate(
    '({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })',
  );
  expect(scroll, `${what} scrolls sideways (${scroll} > ${client})`).toBeLessThanOrEqual(client);
}

/** `target/screenshots/<page>-<lang>-<width>.png`, the whole page. */
async function screenshot(page, name, lang, width) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}-${lang}-${width}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Every mail moto's SES recorded, oldest first. */
async function allMails() {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${MOTO}/moto-api/data.json`);
    const text = await res.text();
    try {
      const data = JSON.parse(text);
      return (data.ses && data.ses.Message) || [];
    } catch (e) {
      // moto builds the dump while the stack changes its models: try again.
      if (attempt >= 30) throw new Error(`moto's data.json is unreadable (HTTP ${res.status})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** The mails moto's SES recorded for `to`, oldest first. */
async function mailsTo(to) {
  return (await allMails()).filter((m) => (m.destinations?.ToAddresses || []).includes(to));
}

/** The one-time code of the latest mail to `to` that carries one. */
async function codeFor(to) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const mails = await mailsTo(to);
    for (const m of mails.reverse()) {
      const body = String(m.body || '');
      const styled = body.match(/letter-spacing: 4px;">\s*(\d{8})\s*</);
      if (styled) return styled[1];
      const plain = body.replace(/<[^>]+>/g, ' ').match(/(?:^|\s)(\d{8})(?=\s|$)/);
      if (plain) return plain[1];
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('no mail with a code arrived');
}

/** The first mail to `to` (waits for it). */
async function waitForMail(to, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mails = await mailsTo(to);
    if (mails.length) return mails[0];
    if (Date.now() > deadline) throw new Error('no mail arrived');
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Every mail to `to`, as text with its links. */
async function mailLinks(to) {
  const mails = await mailsTo(to);
  return mails.flatMap((m) => [...String(m.body || '').matchAll(/href="([^"]+)"/g)].map((x) => x[1]));
}

/** The links of every mail sent to a test subject (`…@example.org`), one list per mail. */
async function subjectMailLinks() {
  return (await allMails())
    .filter((m) => (m.destinations?.ToAddresses || []).some((a) => a.endsWith('@example.org')))
    .map((m) => [...String(m.body || '').matchAll(/href="([^"]+)"/g)].map((x) => x[1].replace(/&amp;/g, '&')));
}

/** A Scan of the stack's table on the emulator (moto checks no signature). */
async function scanTable(filter, values) {
  if (!STACK) throw new Error('POLLY_STACK_NAME is not set');
  const items = [];
  let start;
  do {
    const res = await fetch(MOTO, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.Scan',
        authorization:
          'AWS4-HMAC-SHA256 Credential=testing/20260101/eu-central-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00',
      },
      body: JSON.stringify({
        TableName: `${STACK}-table`,
        FilterExpression: filter,
        ExpressionAttributeNames: { '#k': 'kind' },
        ExpressionAttributeValues: values,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    });
    if (!res.ok) throw new Error(`scan failed: HTTP ${res.status}`);
    const body = await res.json();
    items.push(...body.Items);
    start = body.LastEvaluatedKey;
  } while (start);
  return items;
}

/** Waits until the provider simulator's call for `leadId`-less stack has been analyzed. */
async function waitForAnalyzedCall(timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const calls = await scanTable('#k = :k AND last_event = :e', {
      ':k': { S: 'call' },
      ':e': { S: 'call_analyzed' },
    });
    if (calls.length) return calls;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('the simulated call did not happen (no analyzed call item) within the time');
}

/** A ZIP archive's entries, from its central directory: name → its bytes (inflated). */
function unzip(buf) {
  expect(buf.readUInt32LE(0), 'a ZIP starts with a local file header').toBe(0x04034b50);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  expect(eocd, 'the ZIP has an end of central directory').toBeGreaterThanOrEqual(0);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries = new Map();
  for (let i = 0; i < count; i++) {
    expect(buf.readUInt32LE(p)).toBe(0x02014b50);
    const method = buf.readUInt16LE(p + 10);
    const compressed = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    expect(buf.readUInt32LE(local)).toBe(0x04034b50);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + compressed);
    expect([0, 8], `${name}: stored or deflated`).toContain(method);
    entries.set(name, method === 8 ? zlib.inflateRawSync(raw) : raw);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** The request id in a privacy-center URL (`/privacy/requests/{id}[/code]`). */
function requestIdOf(url) {
  const m = new URL(url).pathname.match(/\/privacy\/requests\/([^/]+)/);
  if (!m) throw new Error(`not a request page: ${new URL(url).pathname}`);
  return m[1];
}

module.exports = {
  BASE,
  MOTO,
  BASE_ORIGIN,
  MOTO_ORIGIN,
  SHOTS,
  LANGS,
  WIDTHS,
  HEIGHT,
  CSP,
  TYPES,
  AXE_TAGS,
  prefix,
  uniqueEmail,
  uniquePhone,
  recordedContext,
  expectOnlyStack,
  expectTokenNowhere,
  expectPageHeaders,
  expectOnlyRequestCookie,
  expectRequestCookie,
  axeCheck,
  expectNoHorizontalScroll,
  screenshot,
  mailsTo,
  codeFor,
  mailLinks,
  waitForMail,
  subjectMailLinks,
  scanTable,
  waitForAnalyzedCall,
  unzip,
  requestIdOf,
};
