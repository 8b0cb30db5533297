// The console in a real browser (Chromium driven by playwright-core), against a running local
// console: `tools/vigil-stack/tests/console.rs` starts the stack and this script, and plays the
// scenario. It signs in as a force operator, says READY, and then, as the tag's fixes arrive:
// the breach must appear in the queue as urgent within URGENT_WITHIN_MS; the operator opens
// the order and sees its zone, its buffer and the tag's track on the map; acknowledges with a
// note; the queue shows who acknowledged. A second browser session without a valid token (none,
// then a tampered one) gets nothing: the sign-in page, 401 from every API call, no case data.
// Screenshots go to SCREENSHOTS (required: the Rust test passes target/console-screenshots, or
// docs/images when asked to refresh docs/CONSOLE.md's).
//
// Environment: CONSOLE_URL (required), ORDER, ZONE, OPERATOR (the local user), NOTE,
// URGENT_WITHIN_MS, SCREENSHOTS, CHROMIUM (default: `which chromium`).

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

const url = process.env.CONSOLE_URL;
if (!url) throw new Error('CONSOLE_URL is required');
const order = process.env.ORDER ?? 'o1';
const zone = process.env.ZONE ?? 'home';
const operator = process.env.OPERATOR ?? 'alice';
const note = process.env.NOTE ?? 'called her; unit dispatched';
const urgentWithin = Number(process.env.URGENT_WITHIN_MS ?? 10000);
const shots = process.env.SCREENSHOTS;
if (!shots) throw new Error('SCREENSHOTS is required');
const executablePath = process.env.CHROMIUM ?? execFileSync('which', ['chromium']).toString().trim();
mkdirSync(shots, { recursive: true });

const step = (what) => console.log(`STEP ${what}`);
const fail = (what) => {
  throw new Error(what);
};

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
try {
  // ---- The operator ----
  const operatorContext = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await operatorContext.newPage();
  const cspViolations = [];
  page.on('console', (m) => {
    if (m.type() === 'error') cspViolations.push(m.text());
  });
  await page.goto(url);
  await page.getByTestId('sign-in').waitFor({ state: 'visible' });
  await page.getByTestId('username').selectOption(operator);
  await page.getByTestId('sign-in-button').click();
  await page.getByTestId('queue').waitFor({ state: 'attached' });
  await page.locator('#console').waitFor({ state: 'visible' });
  const who = await page.getByTestId('who').textContent();
  if (!who.includes(`local:${operator}`)) fail(`signed in as ${who}`);
  step(`signed in as ${who}`);

  // The scenario plays now: the test publishes the tag's fixes when it reads READY.
  console.log('READY');
  const start = Date.now();
  const urgent = page.locator(`[data-testid=alert].urgent[data-order="${order}"][data-zone="${zone}"]`);
  await urgent.waitFor({ state: 'visible', timeout: urgentWithin });
  const urgentAfter = Date.now() - start;
  console.log(`URGENT_AFTER_MS ${urgentAfter}`);
  const first = await page.locator('[data-testid=alert]').first().getAttribute('data-order');
  if (first !== order) fail(`the breach is not first in the queue (${first} is)`);
  await page.screenshot({ path: `${shots}/console-queue.png` });
  step('the breach is urgent at the top of the queue');

  // The order: its zone, buffer and the tag's track on the map.
  await urgent.click();
  await page.getByTestId('order-title').filter({ hasText: `Order ${order}` }).waitFor();
  await page.locator(`#map path.zone-${zone}`).waitFor({ state: 'attached' });
  await page.locator(`#map path.buffer-${zone}`).waitFor({ state: 'attached' });
  await page.locator('#map path.fix.newest').waitFor({ state: 'attached' });
  const fixes = await page.locator('#map path.fix').count();
  if (fixes < 1) fail('no track on the map');
  const level = await page.locator(`[data-testid=states] tr[data-zone="${zone}"] td`).nth(2).textContent();
  if (level !== 'breach') fail(`zone ${zone} shows ${level}`);
  const summary = await page.locator('#order-summary').textContent();
  if (/\+\d{6,}/.test(summary)) fail(`the phone is not masked: ${summary}`);
  await page.locator('.leaflet-control-scale').waitFor();
  await page.screenshot({ path: `${shots}/console-order.png` });
  step(`order ${order}: zone, buffer, ${fixes} fixes, scale, level breach`);

  // Acknowledge, with a note.
  await page.getByTestId('ack-note').fill(note);
  await page.getByTestId(`ack-${zone}`).click();
  const acknowledged = page.locator(`[data-testid=alert].acknowledged[data-order="${order}"][data-zone="${zone}"]`);
  await acknowledged.waitFor({ state: 'visible', timeout: 10000 });
  const ackText = await acknowledged.textContent();
  if (!ackText.includes(`acknowledged by local:${operator}`)) fail(`queue says: ${ackText}`);
  await page.locator('[data-testid=history] li[data-kind=alert_acknowledged]').first().waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/console-acknowledged.png` });
  step('acknowledged, and the queue and history say by whom');
  if (cspViolations.some((v) => /Content Security Policy/i.test(v))) fail(`CSP violations: ${cspViolations.join('; ')}`);

  // ---- A second session without a valid token ----
  const stranger = await browser.newContext();
  const other = await stranger.newPage();
  await other.goto(url);
  await other.getByTestId('sign-in').waitFor({ state: 'visible' });
  if (await other.locator('#console').isVisible()) fail('the console shows without a token');
  const token = await page.evaluate(() => sessionStorage.getItem('vigil.console.token'));
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  claims['cognito:groups'] = ['national', 'admin'];
  const tampered = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
  const answers = await other.evaluate(async ({ order, tampered }) => {
    const paths = ['/api/me', '/api/alerts', '/api/orders', `/api/orders/${order}`, '/api/tags'];
    const out = [];
    for (const path of paths) {
      for (const auth of [null, `Bearer ${tampered}`]) {
        const r = await fetch(path, auth ? { headers: { authorization: auth } } : {});
        out.push({ path, auth: Boolean(auth), status: r.status, body: await r.text() });
      }
    }
    return out;
  }, { order, tampered });
  for (const a of answers) {
    if (a.status !== 401) fail(`${a.path} (${a.auth ? 'tampered token' : 'no token'}) answered ${a.status}`);
    if (a.body.includes(order) && a.path !== `/api/orders/${order}`) fail(`${a.path} leaked ${a.body}`);
  }
  const strangerText = await other.locator('body').innerText();
  if (strangerText.includes(`order ${order}`)) fail('the stranger sees the case');
  await other.screenshot({ path: `${shots}/console-sign-in.png` });
  step(`no token and a tampered token: ${answers.length} API calls refused with 401, the sign-in page only`);
  console.log('ACKED');

} finally {
  await browser.close();
}
