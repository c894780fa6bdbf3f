// The flows a person goes through, with JavaScript on and off: sign-up → the simulated
// call → an access request → the code from the mail → the status page → the ZIP; an
// erasure; a consent withdrawal opened from the link in a mail. Every request the browser
// made is checked afterwards: only the stack, the token in no URL and no Referer, only the
// one cookie, the security headers on every page.
// @ts-check
const fs = require('node:fs');
const { test, expect } = require('@playwright/test');
const P = require('../lib/polly');
const W = require('../lib/pages');

/** The checks every flow ends with, over everything its browser context did. */
async function expectCleanTraffic(rec, { token = null, pageUrls = [], downloads = [] } = {}) {
  await rec.settle();
  P.expectOnlyStack(rec.requests, downloads);
  P.expectOnlyRequestCookie(rec.responses);
  if (token) P.expectTokenNowhere(rec.requests, token, pageUrls);
  for (const r of rec.responses) {
    const u = new URL(r.url);
    if (u.origin !== P.BASE_ORIGIN) continue;
    if (u.pathname.startsWith('/assets/')) {
      expect(r.headers['content-security-policy'], u.pathname).toBe(P.CSP);
      expect(r.headers['cache-control'], u.pathname).toBe('public, max-age=86400');
      continue;
    }
    // Pages and their redirects (303 after each form).
    if (r.document) expect(r.headers['referrer-policy'], `${r.status} ${u.pathname}`).toBe('no-referrer');
    if (r.document && !(r.status >= 300 && r.status < 400)) {
      P.expectPageHeaders(r.headers, `${r.status} ${u.pathname}`);
    }
  }
}

/** Records the main frame's URLs (what the address bar showed). */
function trackUrls(page) {
  const urls = [];
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) urls.push(f.url());
  });
  return urls;
}

for (const js of [true, false]) {
  const mode = js ? 'JavaScript on' : 'JavaScript off';

  test.describe(`flows, ${mode}`, () => {
    test(`sign-up, the call, an access request, the code, the status page, the ZIP (${mode})`, async ({ browser }) => {
      const rec = await P.recordedContext(browser, { js });
      const page = await rec.context.newPage();
      const pageUrls = trackUrls(page);
      const email = P.uniqueEmail('access');
      const phone = P.uniquePhone();

      const recordings = await W.recordingCount();
      await W.signUp(page, W.person(email, phone));
      // The stream → telephony worker → simulator → webhooks → the recording copied.
      await W.waitForRecording(recordings);

      const id = await W.requestThroughCenter(page, 'access', email);
      await W.enterCode(page, id, await P.codeFor(email));
      const token = await P.expectRequestCookie(rec.context, rec.responses, id);

      await expect(page.locator('[data-field=type]')).toHaveCount(1);
      await expect(page.locator('[data-field=status]')).toHaveCount(1);
      await expect(page.locator('[data-field=due_at]')).not.toBeEmpty();
      await expect(page.locator('[data-field=days_left]')).toHaveText(/\b(29|30|31)\b/);
      // The worker builds the export from the stream; the link appears when it is done.
      await W.reloadUntil(page, 'a#download');
      const href = await page.locator('a#download').getAttribute('href');
      expect(href).toBeTruthy();
      const downloadUrl = new URL(/** @type {string} */ (href), page.url()).toString();
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('a#download').click()]);
      const zip = fs.readFileSync(/** @type {string} */ (await download.path()));
      const entries = P.unzip(zip);
      const names = [...entries.keys()];
      for (const n of ['LIESMICH.txt', 'information.json', 'data.json']) expect(names).toContain(n);
      expect(names.filter((n) => /^transcripts\/[^/]+\.json$/.test(n))).toHaveLength(1);
      expect(names.filter((n) => /^recordings\/[^/]+\.wav$/.test(n))).toHaveLength(1);
      // It is this person's export: their data holds the email they signed up with.
      expect(entries.get('data.json')?.toString('utf8')).toContain(email);

      await expectCleanTraffic(rec, { token, pageUrls, downloads: [downloadUrl, download.url()] });
      await rec.context.close();
    });

    test(`an erasure through the pages ends on its status page (${mode})`, async ({ browser }) => {
      const rec = await P.recordedContext(browser, { js });
      const page = await rec.context.newPage();
      const pageUrls = trackUrls(page);
      const email = P.uniqueEmail('erasure');
      await W.signUp(page, W.person(email, P.uniquePhone()));

      const id = await W.requestThroughCenter(page, 'erasure', email);
      await W.enterCode(page, id, await P.codeFor(email));
      const token = await P.expectRequestCookie(rec.context, rec.responses, id);
      await expect(page.locator('[data-field=type]')).not.toBeEmpty();
      await expect(page.locator('[data-field=status]')).not.toBeEmpty();
      await expect(page.locator('[data-field=due_at]')).not.toBeEmpty();
      // No export for an erasure.
      await expect(page.locator('a#download')).toHaveCount(0);
      // The status page without the cookie shows nothing of the request.
      const stranger = await P.recordedContext(browser, { js });
      const other = await stranger.context.newPage();
      await other.goto(`/privacy/requests/${id}`);
      await expect(other.locator('[data-field]')).toHaveCount(0);
      await stranger.context.close();

      await expectCleanTraffic(rec, { token, pageUrls });
      await rec.context.close();
    });

    test(`a consent withdrawal opened from the link in a mail ends on its status page (${mode})`, async ({ browser }) => {
      const rec = await P.recordedContext(browser, { js });
      const page = await rec.context.newPage();
      const pageUrls = trackUrls(page);
      const email = P.uniqueEmail('withdraw');
      await W.signUp(page, W.person(email, P.uniquePhone()));

      // The sign-up's confirmation mail links to both pages; so does every other mail the
      // stack sent to a data subject so far (the other flows' code and receipt mails).
      const own = await P.waitForMail(email);
      const ownLinks = [...String(own.body || '').matchAll(/href="([^"]+)"/g)].map((x) => x[1].replace(/&amp;/g, '&'));
      const withdraw = ownLinks.find((l) => new URL(l, P.BASE).pathname === '/privacy/withdraw');
      const noCalls = ownLinks.find((l) => new URL(l, P.BASE).pathname === '/privacy/no-calls');
      expect(withdraw, 'the sign-up mail links to /privacy/withdraw').toBeTruthy();
      expect(noCalls, 'the sign-up mail links to /privacy/no-calls').toBeTruthy();
      expect(new URL(/** @type {string} */ (withdraw)).origin).toBe(P.BASE_ORIGIN);
      expect(new URL(/** @type {string} */ (noCalls)).origin).toBe(P.BASE_ORIGIN);
      for (const l of await P.subjectMailLinks()) {
        const paths = l.map((u) => new URL(u, P.BASE).pathname);
        expect(paths, 'every mail links to /privacy/withdraw').toContain('/privacy/withdraw');
        expect(paths, 'every mail links to /privacy/no-calls').toContain('/privacy/no-calls');
      }

      // "No more calls": one click from the mail opens the form preset to an objection.
      await page.goto(/** @type {string} */ (noCalls));
      await expect(W.typeField(page)).toHaveValue('objection');

      // Withdrawal: click 1 opens the form preset, click 2 sends it.
      await page.goto(/** @type {string} */ (withdraw));
      await expect(W.typeField(page)).toHaveValue('withdraw_consent');
      await W.fillFields(page, { email });
      await W.submit(page, 'email');
      await expect(page).toHaveURL(/\/privacy\/requests\/[^/]+\/code$/);
      const id = new URL(page.url()).pathname.split('/').slice(-2)[0];
      await W.enterCode(page, id, await P.codeFor(email));
      const token = await P.expectRequestCookie(rec.context, rec.responses, id);
      await expect(page.locator('[data-field=type]')).not.toBeEmpty();
      // The worker carries a withdrawal out at once: the outcome appears.
      await W.reloadUntil(page, '[data-field=outcome]');
      await expect(page.locator('[data-field=outcome]')).not.toBeEmpty();

      await expectCleanTraffic(rec, { token, pageUrls });
      await rec.context.close();
    });
  });
}
