// Drive Swagger UI at <base>/docs/ in headless Chromium, as a newcomer would: list the
// operations, try GET /api/faults without a token (401), authorize with the token, try it
// again (200). Prints one JSON object; exits 1 on any failure.
//
//   node swagger.mjs http://127.0.0.1:8000 <token>     (CHROMIUM=/usr/bin/chromium)
import { chromium } from 'playwright-core';

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error('usage: node swagger.mjs <base-url> <token>');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = { operations: [], external_requests: [], console_errors: [] };
let failed = false;
try {
  const page = await browser.newPage();
  const origin = new URL(base).origin;
  page.on('request', (r) => {
    if (!r.url().startsWith(origin) && /^https?:/.test(r.url())) out.external_requests.push(r.url());
  });
  page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });
  await page.goto(`${base}/docs/`);
  await page.waitForSelector('.opblock', { timeout: 30000 });
  out.title = await page.locator('.info .title').first().innerText();
  out.operations = await page.$$eval('.opblock', (els) => els.map((e) => {
    const method = e.querySelector('.opblock-summary-method')?.textContent.trim();
    const path = e.querySelector('.opblock-summary-path')?.getAttribute('data-path');
    return `${method} ${path}`;
  }));

  const faults = page.locator('.opblock-get', {
    has: page.locator('.opblock-summary-path[data-path="/api/faults"]'),
  });
  await faults.locator('.opblock-summary').click();
  await faults.locator('.try-out__btn').click();
  const execute = async () => {
    await faults.locator('button.execute').click();
    const status = faults.locator('.live-responses-table tr.response .response-col_status').first();
    await status.waitFor({ timeout: 15000 });
    const text = (await status.innerText()).trim();
    // Clear for the next run.
    const clear = faults.locator('button.btn-clear');
    if (await clear.count()) await clear.click();
    return Number.parseInt(text, 10);
  };
  out.status_without_token = await execute();

  await page.locator('.auth-wrapper button.authorize').click();
  const modal = page.locator('.modal-ux');
  await modal.locator('input').first().fill(token);
  await modal.locator('button.authorize').click();
  await modal.locator('button.btn-done, button.close-modal').first().click();
  out.status_with_token = await execute();

  failed = out.operations.length === 0 || out.external_requests.length > 0
    || out.status_without_token !== 401 || out.status_with_token !== 200;
} catch (e) {
  out.error = String(e && e.stack || e);
  failed = true;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(failed ? 1 : 0);
