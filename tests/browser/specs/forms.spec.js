// Every validation error of the sign-up and request forms next to its field: the page's
// errors are exactly the JSON API's field errors for the same input; each is tied to its
// field (`aria-describedby` → the message, `aria-invalid`), listed in the summary, which
// gets the focus (with JavaScript). And the sign-up form by keyboard alone.
// @ts-check
const { test, expect } = require('@playwright/test');
const P = require('../lib/polly');
const W = require('../lib/pages');

const LONG_NAME = 'A'.repeat(101);
const LONG_TEXT = 'x'.repeat(2001);

/** The field errors the JSON API gives for `body` at `route`. */
async function apiErrors(route, body) {
  const res = await fetch(`${P.BASE}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status, `the API refuses ${JSON.stringify(Object.keys(body))}`).toBe(422);
  const problem = await res.json();
  return [...new Set(problem.errors.map((e) => e.field))].sort();
}

/** The sign-up JSON the API takes for what the form holds. */
function signupJson(values, policyVersion) {
  const body = {};
  for (const k of ['first_name', 'last_name', 'email', 'phone']) body[k] = values[k] ?? '';
  if (values.notes) body.notes = values.notes;
  const from = values['call_window.from'];
  const to = values['call_window.to'];
  if (from || to) body.call_window = { ...(from ? { from } : {}), ...(to ? { to } : {}) };
  body.consent = { privacy_policy_version: policyVersion };
  if (values['consent.contact_by_phone']) body.consent.contact_by_phone = true;
  return body;
}

/** The request JSON the API takes for what the form holds. */
function requestJson(type, values) {
  const body = { type };
  for (const [k, v] of Object.entries(values)) {
    if (v === '') continue;
    if (k.startsWith('corrections.')) {
      body.corrections = { ...(body.corrections || {}), [k.slice('corrections.'.length)]: v };
    } else body[k] = v;
  }
  return body;
}

/**
 * Submits the form (browser-side checks off, so the server's answer shows) and checks
 * that its errors are exactly `fields`, each next to and tied to its field.
 */
async function expectFieldErrors(page, fields, { js, anyField }) {
  await page.locator('main form').first().evaluate((f) => { /** @type {HTMLFormElement} */ (f).noValidate = true; });
  await W.submit(page, anyField);
  const summary = page.locator('.error-summary');
  await expect(summary).toHaveCount(1);
  await expect(summary).toHaveAttribute('role', 'alert');
  await expect(summary).toHaveAttribute('tabindex', '-1');
  if (js) await expect(summary).toBeFocused();

  const shown = (await page.locator('.field-error').evaluateAll((els) => els.map((e) => e.id))).sort();
  expect(shown, 'the page shows an error at exactly the fields the API names').toEqual(
    fields.map((f) => W.errorId(f)).sort(),
  );
  for (const f of fields) {
    const err = page.locator(`#${W.errorId(f)}`);
    await expect(err).toBeVisible();
    await expect(err).not.toBeEmpty();
    // The field (or its group) points at its message and says it is invalid.
    const tied = page.locator(`[aria-describedby~="${W.errorId(f)}"]`);
    expect(await tied.count(), `something is described by ${W.errorId(f)}`).toBeGreaterThan(0);
    const input = page.locator(`#${W.fieldId(f)}`);
    if ((await input.count()) === 1) {
      // An input says it is invalid; a group (fieldset) of inputs is only described.
      const tag = await input.evaluate((e) => e.tagName);
      if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag)) {
        await expect(input).toHaveAttribute('aria-invalid', 'true');
      }
      const described = (await input.getAttribute('aria-describedby')) || '';
      expect(described.split(/\s+/)).toContain(W.errorId(f));
      // Next to its field: within a few lines above or below it.
      const a = await input.boundingBox();
      const b = await err.boundingBox();
      if (a && b) expect(Math.abs(b.y - a.y), `${f}: error next to the field`).toBeLessThan(160);
    }
    // The summary links to the field.
    const link = summary.locator(`a[href^="#${W.fieldId(f)}"]`);
    expect(await link.count(), `the summary links to ${W.fieldId(f)}`).toBeGreaterThan(0);
    const target = (await link.first().getAttribute('href'))?.slice(1) ?? '';
    await expect(page.locator(`[id="${target}"]`)).toHaveCount(1);
  }
  await expect(page.locator('html')).toHaveAttribute('lang', /^(de|en)$/);
}

const SIGNUP_CASES = [
  { name: 'everything empty', values: {} },
  {
    name: 'every field wrong',
    values: {
      first_name: LONG_NAME,
      last_name: 'Muster\u0007mann',
      email: 'nicht-eine-adresse',
      phone: '12',
      notes: LONG_TEXT,
      'consent.contact_by_phone': true,
    },
  },
  {
    name: 'a call window outside the calling hours',
    values: {
      first_name: 'Erika',
      last_name: 'Mustermann',
      email: 'window@example.org',
      phone: '0170 1234567',
      'call_window.from': '21:00',
      'call_window.to': '23:00',
      'consent.contact_by_phone': true,
    },
  },
];

const REQUEST_CASES = [
  { name: 'no email and no phone', type: 'access', values: {} },
  { name: 'every field wrong', type: 'erasure', values: { email: 'nope', phone: '12', message: LONG_TEXT } },
  {
    name: 'a wrong correction',
    type: 'rectification',
    values: { email: 'fix@example.org', 'corrections.email': 'kaputt' },
  },
];

for (const js of [true, false]) {
  const mode = js ? 'JavaScript on' : 'JavaScript off';
  for (const lang of P.LANGS) {
    test(`sign-up form: every error at its field, as the API names it (${lang}, ${mode})`, async ({ browser }) => {
      const rec = await P.recordedContext(browser, { js });
      const page = await rec.context.newPage();
      for (const c of SIGNUP_CASES) {
        await test.step(c.name, async () => {
          await page.goto(`${P.prefix(lang)}/signup`);
          const version = await page.locator('[name="consent.privacy_policy_version"]').inputValue();
          expect(version).toMatch(/^\d{4}-\d{2}-\d{2}$/);
          const fields = await apiErrors('/v1/signups', signupJson(c.values, version));
          expect(fields.length).toBeGreaterThan(0);
          await W.fillFields(page, c.values);
          await expectFieldErrors(page, fields, { js, anyField: 'email' });
          // 422, the values kept (the email as typed), nothing echoed into a URL.
          expect(new URL(page.url()).pathname).toBe(`${P.prefix(lang)}/signup`);
          if (c.values.email) await expect(page.locator('#f-email')).toHaveValue(c.values.email);
          if (c.values['consent.contact_by_phone']) {
            await expect(page.locator('#f-consent-contact_by_phone')).toBeChecked();
          }
        });
      }
      await rec.settle();
      const posts = rec.responses.filter((r) => r.url.endsWith('/signup') && r.status === 422);
      expect(posts).toHaveLength(SIGNUP_CASES.length);
      for (const r of posts) P.expectPageHeaders(r.headers, 'sign-up with errors');
      P.expectOnlyStack(rec.requests);
      P.expectOnlyRequestCookie(rec.responses);
      await rec.context.close();
    });

    test(`request form: every error at its field, as the API names it (${lang}, ${mode})`, async ({ browser }) => {
      const rec = await P.recordedContext(browser, { js });
      const page = await rec.context.newPage();
      for (const c of REQUEST_CASES) {
        await test.step(c.name, async () => {
          await page.goto(`${P.prefix(lang)}/privacy/request?type=${c.type}`);
          const fields = await apiErrors('/v1/dsar', requestJson(c.type, c.values));
          await W.fillFields(page, c.values);
          await expectFieldErrors(page, fields, { js, anyField: 'email' });
          expect(new URL(page.url()).pathname).toBe(`${P.prefix(lang)}/privacy/request`);
          await expect(W.typeField(page)).toHaveValue(c.type);
        });
      }
      await test.step('an empty code', async () => {
        // Any id: the code page is the same for every id; an empty code is refused at its
        // field before any request is looked up (a wrong one: pages.spec.js).
        await page.goto(`${P.prefix(lang)}/privacy/requests/0190b6f2-0000-7000-8000-000000000000/code`);
        await W.fillFields(page, { code: '' });
        await expectFieldErrors(page, ['code'], { js, anyField: 'code' });
      });
      await rec.settle();
      P.expectOnlyStack(rec.requests);
      expect((await rec.context.cookies()).length, 'no cookie without a verified code').toBe(0);
      P.expectOnlyRequestCookie(rec.responses);
      await rec.context.close();
    });
  }
}

test('the sign-up form by keyboard alone: Tab, typing, Space, Enter', async ({ browser }) => {
  const rec = await P.recordedContext(browser, { js: true });
  const page = await rec.context.newPage();
  await page.goto('/signup');
  const email = P.uniqueEmail('keyboard');
  const values = { ...W.person(email, P.uniquePhone()) };
  const typed = new Set();
  let checked = false;
  let submitted = false;
  for (let i = 0; i < 80 && !submitted; i++) {
    await page.keyboard.press('Tab');
    const el = await page.evaluate(() => {
      const a = /** @type {HTMLElement} */ (document.activeElement);
      const s = getComputedStyle(a);
      return {
        tag: a.tagName.toLowerCase(),
        type: a.getAttribute('type') || '',
        name: a.getAttribute('name') || '',
        visibleFocus: (s.outlineStyle !== 'none' && s.outlineWidth !== '0px') || s.boxShadow !== 'none',
      };
    });
    if (el.tag === 'body') continue;
    // A time field's focus ring is on its hour and minute parts, inside the control.
    if (el.type !== 'time') expect(el.visibleFocus, `focus is visible on ${el.tag}[name=${el.name}]`).toBe(true);
    if (el.name in values && !typed.has(el.name)) {
      await page.keyboard.type(values[el.name]);
      typed.add(el.name);
    } else if (el.name === 'consent.contact_by_phone') {
      await page.keyboard.press('Space');
      checked = true;
    } else if (
      (el.tag === 'button' && el.type !== 'button') ||
      (el.tag === 'input' && el.type === 'submit')
    ) {
      if (typed.size === Object.keys(values).length && checked) {
        await Promise.all([page.waitForURL(/\/signup\/thanks$/), page.keyboard.press('Enter')]);
        submitted = true;
      }
    }
  }
  expect([...typed].sort()).toEqual(Object.keys(values).sort());
  expect(checked, 'the consent checkbox was reached by Tab').toBe(true);
  expect(submitted, 'the submit button was reached by Tab and pressed with Enter').toBe(true);
  await expect(page).toHaveURL(/\/signup\/thanks$/);
  await rec.context.close();
});
