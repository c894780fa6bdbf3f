// @ts-check
// Playwright in Debian's Chromium (/usr/bin/chromium, installed by .ci/run); no browser
// download. The stack under test is POLLY_BASE_URL (tests/it/browser.rs starts it).
const { defineConfig } = require('@playwright/test');

module.exports = defineConfig({
  testDir: './specs',
  // One worker: the machine has two cores shared with the stack under test; the flows
  // are independent, so a test that fails does not stop the others.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 180_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  outputDir: process.env.POLLY_SCREENSHOT_DIR
    ? `${process.env.POLLY_SCREENSHOT_DIR}/playwright-output`
    : 'test-results',
  use: {
    baseURL: process.env.POLLY_BASE_URL,
    headless: true,
    trace: 'off',
    screenshot: 'off',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
