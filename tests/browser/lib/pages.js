// Driving the pages the way a person does: fill the fields by their ids (the contract:
// a field named N has id `f-<N with '.' as '-'>`), press the form's submit button.
// @ts-check
const { expect } = require('@playwright/test');
const { prefix, scanTable } = require('./polly');

/** The id of the input for the field `name`. */
function fieldId(name) {
  return `f-${name.replace(/\./g, '-')}`;
}

/** The id of the error message of the field `name`. */
function errorId(name) {
  return `e-${name.replace(/\./g, '-')}`;
}

/** A person who signs up (example data only). */
function person(email, phone) {
  return { first_name: 'Erika', last_name: 'Mustermann', email, phone, notes: 'Bitte nachmittags' };
}

/**
 * Sets the fields of the form on `page`: text fields are filled, booleans check or
 * uncheck a checkbox.
 * @param {import('@playwright/test').Page} page
 * @param {Record<string, string|boolean>} values
 */
async function fillFields(page, values) {
  for (const [name, value] of Object.entries(values)) {
    const field = page.locator(`#${fieldId(name)}`);
    if (typeof value === 'boolean') {
      await field.setChecked(value);
    } else {
      // A browser cuts typing at `maxlength`; to see the server's own check, the limit
      // is lifted for values longer than it (the server must refuse them anyway).
      const max = Number((await field.getAttribute('maxlength')) ?? Infinity);
      if (value.length > max) await field.evaluate((e) => e.removeAttribute('maxlength'));
      if ((await field.evaluate((e) => e.tagName)) === 'SELECT') await field.selectOption(value);
      else await field.fill(value);
    }
  }
}

/** Presses the submit button of the form that holds `#<fieldId>` and waits for the answer. */
async function submit(page, anyFieldName) {
  const form = page.locator('main form', { has: page.locator(`#${fieldId(anyFieldName)}`) });
  const button = form.locator('button[type=submit], input[type=submit], button:not([type])').first();
  await Promise.all([
    page.waitForEvent('framenavigated', (f) => f === page.mainFrame()),
    button.click(),
  ]);
  await page.waitForLoadState('load');
}

/** The sign-up through the form; ends on the thanks page. */
async function signUp(page, values, lang = 'de') {
  await page.goto(`${prefix(lang)}/signup`);
  await fillFields(page, { ...values, 'consent.contact_by_phone': true });
  await submit(page, 'email');
  await expect(page).toHaveURL(new RegExp(`${prefix(lang)}/signup/thanks$`));
}

/** How many recordings the stack holds: one more once a call was played and copied. */
async function recordingCount() {
  return (await scanTable('#k = :k', { ':k': { S: 'recording' } })).length;
}

/** Waits until the stack holds more than `before` recordings (the simulated call happened). */
async function waitForRecording(before, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await recordingCount()) > before) return;
    if (Date.now() > deadline) {
      throw new Error('the simulated call did not happen: no recording was stored in time');
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * From the privacy center's start page, the link of a right, then the form with the
 * email: ends on the code page and returns the request id.
 */
async function requestThroughCenter(page, type, email, lang = 'de') {
  await page.goto(`${prefix(lang)}/privacy`);
  const link = page.locator(`main a[href$="/privacy/request?type=${type}"]`);
  await expect(link).toHaveCount(1);
  await link.click();
  await expect(page).toHaveURL(new RegExp(`${prefix(lang)}/privacy/request\\?type=${type}$`));
  await fillFields(page, { email });
  await submit(page, 'email');
  await expect(page).toHaveURL(new RegExp(`${prefix(lang)}/privacy/requests/[^/?#]+/code$`));
  return new URL(page.url()).pathname.split('/').slice(-2)[0];
}

/** Enters the code on the code page; ends on the status page. */
async function enterCode(page, id, code, lang = 'de') {
  await fillFields(page, { code });
  await submit(page, 'code');
  await expect(page).toHaveURL(new RegExp(`${prefix(lang)}/privacy/requests/${id}$`));
}

/** Reloads the status page until `locator` is there. */
async function reloadUntil(page, selector, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await page.locator(selector).count()) > 0) return;
    if (Date.now() > deadline) throw new Error(`the status page never showed ${selector}`);
    await new Promise((r) => setTimeout(r, 1000));
    await page.reload();
  }
}

/** The request form's chosen type: the checked radio button (or a select / hidden input). */
function typeField(page) {
  return page
    .locator('main form input[name=type]:checked, main form select[name=type], main form input[type=hidden][name=type]')
    .first();
}

module.exports = {
  typeField,
  fieldId,
  errorId,
  person,
  fillFields,
  submit,
  signUp,
  recordingCount,
  waitForRecording,
  requestThroughCenter,
  enterCode,
  reloadUntil,
};
