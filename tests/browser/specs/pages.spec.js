// Every page, in German and English, at 1280 and 360 px: the exact security headers,
// `lang`, the language switch and skip link, no inline script or style and no CSP
// report in the console, axe-core with 0 violations (WCAG 2.2 AA tags), no sideways
// scroll, a screenshot each (`<page>-<lang>-<width>.png`); the pages with errors shown and
// the pages of a live request included. Then page weight and time to first byte per page
// (target/screenshots/metrics.json).
// @ts-check
const fs = require('node:fs');
const path = require('node:path');
const { test, expect } = require('@playwright/test');
const P = require('../lib/polly');
const W = require('../lib/pages');

/** An id no request has (UUID v7 form). */
const UNKNOWN = '0190b6f2-1111-7000-8000-000000000000';

/** The pages anyone can open without state (`POLLY_PAGES`: a regex to check fewer, by hand). */
const ALL_OPEN_PAGES = [
  { name: 'signup', path: '/signup' },
  { name: 'signup-thanks', path: '/signup/thanks' },
  { name: 'privacy-policy', path: '/privacy-policy' },
  { name: 'privacy', path: '/privacy' },
  ...P.TYPES.map((t) => ({ name: `request-${t.replace(/_/g, '-')}`, path: `/privacy/request?type=${t}` })),
  { name: 'withdraw', path: '/privacy/withdraw' },
  { name: 'no-calls', path: '/privacy/no-calls' },
  { name: 'code', path: `/privacy/requests/${UNKNOWN}/code` },
  { name: 'status-without-cookie', path: `/privacy/requests/${UNKNOWN}` },
];
const OPEN_PAGES = ALL_OPEN_PAGES.filter((p) => new RegExp(process.env.POLLY_PAGES || '.').test(p.name));

const METRICS = path.join(P.SHOTS, 'metrics.json');

/** Merges `entry` into metrics.json under its page and language (written as it goes). */
function recordMetrics(name, lang, entry) {
  let all = { pages: [] };
  try {
    all = JSON.parse(fs.readFileSync(METRICS, 'utf8'));
  } catch {
    // first entry
  }
  let row = all.pages.find((p) => p.page === name && p.lang === lang);
  if (!row) {
    row = { page: name, lang };
    all.pages.push(row);
  }
  Object.assign(row, entry);
  all.pages.sort((a, b) => (a.page + a.lang).localeCompare(b.page + b.lang));
  fs.mkdirSync(P.SHOTS, { recursive: true });
  fs.writeFileSync(METRICS, `${JSON.stringify(all, null, 2)}\n`);
}

/** The same path in the other language. */
function otherLangPath(lang, pathname) {
  return lang === 'en' ? pathname.replace(/^\/en(?=\/)/, '') : `/en${pathname}`;
}

/**
 * The checks of one rendered page at both widths; `response` is the page's own response
 * (the document), `consoleErrors` what the console reported while it loaded.
 */
async function checkPage(page, name, lang, response, consoleErrors) {
  expect(response, `${name}: a document response`).toBeTruthy();
  P.expectPageHeaders(await response.allHeaders(), `${name} (${lang})`);
  await expect(page.locator('html')).toHaveAttribute('lang', lang);
  expect((await page.title()).trim(), `${name}: a title`).not.toBe('');
  await expect(page.locator('meta[name=viewport]')).toHaveAttribute('content', 'width=device-width, initial-scale=1');
  await expect(page.locator('meta[name=robots]')).toHaveAttribute('content', 'noindex, nofollow');
  await expect(page.locator('main#main')).toHaveCount(1);
  await expect(page.locator('a[href="#main"]'), `${name}: a skip link`).toHaveCount(1);
  await expect(page.locator('script:not([src])'), `${name}: no inline script`).toHaveCount(0);
  await expect(page.locator('style'), `${name}: no style element`).toHaveCount(0);
  await expect(page.locator('[style]'), `${name}: no style attribute`).toHaveCount(0);
  const scripts = await page.locator('script[src]').evaluateAll((s) => s.map((e) => e.getAttribute('src')));
  expect(scripts).toEqual(['/assets/site.js']);
  // The language switch leads to this page in the other language.
  const here = new URL(page.url()).pathname;
  const hrefs = await page.locator('a[href]').evaluateAll((as) => as.map((a) => /** @type {HTMLAnchorElement} */ (a).href));
  expect(
    hrefs.map((h) => new URL(h).pathname),
    `${name} (${lang}): a link to the same page in the other language`,
  ).toContain(otherLangPath(lang, here));
  // Every link stays on the stack.
  // The one exception: the status page's download link is the export's presigned URL
  // (the exports bucket, locally the emulator).
  const download = await page.locator('a#download').evaluateAll((as) => as.map((a) => /** @type {HTMLAnchorElement} */ (a).href));
  for (const h of hrefs) {
    const u = new URL(h);
    if (u.protocol === 'mailto:' || u.protocol === 'tel:') continue;
    if (download.includes(h) && u.origin === P.MOTO_ORIGIN) continue;
    expect(u.origin, `${name}: link ${u.pathname}`).toBe(P.BASE_ORIGIN);
  }
  expect(consoleErrors.filter((m) => /Content Security Policy|Refused to/i.test(m)), `${name}: CSP reports`).toEqual([]);

  const results = {};
  for (const width of P.WIDTHS) {
    await page.setViewportSize({ width, height: P.HEIGHT[width] });
    await P.screenshot(page, name, lang, width);
    await P.expectNoHorizontalScroll(page, `${name} (${lang}, ${width} px)`);
    results[width] = await P.axeCheck(page, `${name} (${lang}, ${width} px)`);
  }
  await page.setViewportSize({ width: 1280, height: P.HEIGHT[1280] });
  recordMetrics(name, lang, {
    axe_violations: results[1280].violations + results[360].violations,
    axe_passes: results[1280].passes,
    axe_incomplete: results[1280].incomplete,
  });
}

/** A page whose console errors are collected. */
async function watchedPage(context) {
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return { page, errors };
}

for (const lang of P.LANGS) {
  test(`every open page (${lang}): headers, axe, 360 px, screenshots`, async ({ browser }) => {
    const rec = await P.recordedContext(browser, { js: true });
    const { page, errors } = await watchedPage(rec.context);
    for (const p of OPEN_PAGES) {
      await test.step(p.name, async () => {
        errors.length = 0;
        const response = await page.goto(`${P.prefix(lang)}${p.path}`);
        // Without the cookie the status page may answer 200 or a 4xx; never a 5xx.
        if (p.name === 'status-without-cookie') expect(response?.status()).toBeLessThan(500);
        else expect(response?.status(), `${p.name} answers 200`).toBe(200);
        await checkPage(page, p.name, lang, response, errors);
      });
    }
    await rec.settle();
    P.expectOnlyStack(rec.requests);
    expect(await rec.context.cookies(), 'no cookie on the open pages').toEqual([]);
    await rec.context.close();
  });
}

test('the pages with errors and the pages of a live request, both languages', async ({ browser }) => {
  const rec = await P.recordedContext(browser, { js: true });
  const { page, errors } = await watchedPage(rec.context);
  const submitted = async (name, lang, anyField) => {
    errors.length = 0;
    await page.locator('main form').first().evaluate((f) => { /** @type {HTMLFormElement} */ (f).noValidate = true; });
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.request().isNavigationRequest() && r.request().method() === 'POST'),
      W.submit(page, anyField),
    ]);
    expect(response.status(), `${name}: 422`).toBe(422);
    await expect(page.locator('.error-summary')).toHaveCount(1);
    await checkPage(page, name, lang, response, errors);
  };

  for (const lang of P.LANGS) {
    await test.step(`sign-up with errors (${lang})`, async () => {
      await page.goto(`${P.prefix(lang)}/signup`);
      await submitted('signup-errors', lang, 'email');
    });
    await test.step(`request with errors (${lang})`, async () => {
      await page.goto(`${P.prefix(lang)}/privacy/request?type=rectification`);
      await W.fillFields(page, { email: 'nope' });
      await submitted('request-errors', lang, 'email');
    });
  }

  // One request (the per-source limit counts accepted requests): its code page in both
  // languages, a wrong code in both, then the status page in both with the cookie.
  const email = P.uniqueEmail('pages');
  const id = await W.requestThroughCenter(page, 'access', email);
  for (const lang of P.LANGS) {
    await test.step(`a wrong code (${lang})`, async () => {
      await page.goto(`${P.prefix(lang)}/privacy/requests/${id}/code`);
      await W.fillFields(page, { code: '00000000' });
      await submitted('code-error', lang, 'code');
    });
  }
  await page.goto(`/privacy/requests/${id}/code`);
  await W.enterCode(page, id, await P.codeFor(email));
  for (const lang of P.LANGS) {
    await test.step(`the status page (${lang})`, async () => {
      errors.length = 0;
      const response = await page.goto(`${P.prefix(lang)}/privacy/requests/${id}`);
      for (const f of ['type', 'status', 'due_at', 'days_left']) {
        await expect(page.locator(`[data-field=${f}]`), `status page shows ${f}`).not.toBeEmpty();
      }
      await checkPage(page, 'status', lang, response, errors);
    });
  }

  // Without the cookie, the status page of this request is the page of an unknown one.
  const stranger = await browser.newContext({ baseURL: P.BASE });
  const other = await stranger.newPage();
  const known = await (await other.goto(`/privacy/requests/${id}`))?.text();
  const unknown = await (await other.goto(`/privacy/requests/${UNKNOWN}`))?.text();
  expect(known?.replaceAll(id, '<id>')).toBe(unknown?.replaceAll(UNKNOWN, '<id>'));
  await stranger.close();

  await rec.settle();
  P.expectOnlyStack(rec.requests);
  P.expectOnlyRequestCookie(rec.responses);
  await rec.context.close();
});

test('page weight and time to first byte per page', async ({ browser }) => {
  test.setTimeout(180_000);
  const LOADS = 20;
  for (const lang of P.LANGS) {
    for (const p of OPEN_PAGES) {
      // Weight: a first visit, nothing cached; every response's headers and body.
      const context = await browser.newContext({ baseURL: P.BASE });
      const page = await context.newPage();
      const finished = [];
      page.on('requestfinished', (r) => finished.push(r));
      await page.goto(`${P.prefix(lang)}${p.path}`, { waitUntil: 'load' });
      const bytes = { html: 0, css: 0, js: 0, other: 0 };
      for (const r of finished) {
        const s = await r.sizes();
        const n = s.responseHeadersSize + s.responseBodySize;
        const u = new URL(r.url()).pathname;
        const kind = u.endsWith('.css') ? 'css' : u.endsWith('.js') ? 'js' : r.resourceType() === 'document' ? 'html' : 'other';
        bytes[kind] += n;
      }
      const total = bytes.html + bytes.css + bytes.js + bytes.other;
      expect(total, `${p.name} (${lang}) under 50 KB`).toBeLessThan(50 * 1024);

      // Time to first byte: request sent → first byte of the answer, over LOADS loads (the
      // German pages; the English ones are the same code with other texts).
      const ttfb = [];
      for (let i = 0; i < (lang === 'de' ? LOADS : 0); i++) {
        const response = await page.goto(`${P.prefix(lang)}${p.path}`, { waitUntil: 'commit' });
        await response?.finished();
        const t = response?.request().timing();
        if (t && t.responseStart >= 0 && t.requestStart >= 0) ttfb.push(t.responseStart - t.requestStart);
      }
      ttfb.sort((a, b) => a - b);
      const entry = { path: `${P.prefix(lang)}${p.path}`, bytes: { ...bytes, total } };
      if (lang === 'de') {
        expect(ttfb.length).toBe(LOADS);
        const p50 = ttfb[Math.floor(ttfb.length / 2)];
        const p90 = ttfb[Math.floor(ttfb.length * 0.9)];
        entry.ttfb_ms = { p50: Math.round(p50 * 10) / 10, p90: Math.round(p90 * 10) / 10, loads: LOADS };
      }
      recordMetrics(p.name, lang, entry);
      await context.close();
    }
  }
});
