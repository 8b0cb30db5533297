// The deployed console's sign-in in Chromium, against a stand-in for Cognito's managed sign-in
// endpoints (there is no Cognito emulator here): the web app is served as CloudFront serves it
// (dist/ and a config.json with sign-in kind "cognito"; /api/* passed to the local console at
// CONSOLE_URL), and a stand-in identity provider implements the OAuth 2.0 authorization code
// grant with PKCE as Cognito documents it (/oauth2/authorize, /oauth2/token, /logout). It
// checks what the app sends: a public client's id, the redirect URI, scope openid, an S256
// challenge, a state; the token call's code, redirect URI and a verifier that hashes to the
// challenge. Its access token is one the local console accepts (the local sign-in's, for the
// user the stand-in "signed in").
//
// The run: the app sends the browser to /oauth2/authorize; it comes back with the code and the
// state; the app exchanges them, removes them from the address, and shows the console as that
// user. A callback with the wrong state is refused and shows the sign-in page. Signing out goes
// to /logout and back. Prints SIGNED_IN <operator> and exits 0.
//
// Environment: CONSOLE_URL (required), OPERATOR (default alice), CHROMIUM.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const consoleUrl = process.env.CONSOLE_URL;
if (!consoleUrl) throw new Error('CONSOLE_URL is required');
const operator = process.env.OPERATOR ?? 'alice';
const executablePath = process.env.CHROMIUM ?? execFileSync('which', ['chromium']).toString().trim();
const dist = new URL('../dist/', import.meta.url);
const CLIENT_ID = 'console-client-id';
const fail = (what) => {
  throw new Error(what);
};
const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
const body = (req) => new Promise((resolve) => {
  let data = '';
  req.on('data', (c) => (data += c));
  req.on('end', () => resolve(data));
});

// ---- The stand-in for Cognito's managed sign-in ----
const codes = new Map();
const seen = { authorize: 0, token: 0, logout: 0 };
const idp = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://idp');
  const cors = { 'access-control-allow-origin': '*', 'access-control-allow-headers': 'content-type' };
  try {
    if (req.method === 'OPTIONS') return res.writeHead(204, cors).end();
    if (url.pathname === '/oauth2/authorize') {
      seen.authorize += 1;
      const q = url.searchParams;
      for (const [k, v] of [['response_type', 'code'], ['client_id', CLIENT_ID], ['redirect_uri', site.url], ['scope', 'openid'], ['code_challenge_method', 'S256']]) {
        if (q.get(k) !== v) fail(`authorize: ${k}=${q.get(k)}, expected ${v}`);
      }
      if (!q.get('state') || !/^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') ?? '')) fail('authorize: no state, or not an S256 challenge');
      const code = randomBytes(16).toString('hex');
      codes.set(code, { challenge: q.get('code_challenge'), redirect: q.get('redirect_uri') });
      const state = site.tamperState ? 'not-the-state' : q.get('state');
      return res.writeHead(302, { location: `${q.get('redirect_uri')}?code=${code}&state=${encodeURIComponent(state)}` }).end();
    }
    if (url.pathname === '/oauth2/token' && req.method === 'POST') {
      seen.token += 1;
      const form = new URLSearchParams(await body(req));
      if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') fail(`token: content-type ${req.headers['content-type']}`);
      const grant = codes.get(form.get('code'));
      codes.delete(form.get('code'));
      const verifier = form.get('code_verifier') ?? '';
      const ok = grant
        && form.get('grant_type') === 'authorization_code'
        && form.get('client_id') === CLIENT_ID
        && form.get('redirect_uri') === grant.redirect
        && createHash('sha256').update(verifier).digest('base64url') === grant.challenge;
      if (!ok) return res.writeHead(400, { ...cors, 'content-type': 'application/json' }).end('{"error":"invalid_grant"}');
      // A token the API accepts: the local console's own, for the user signed in here.
      const signed = await fetch(`${consoleUrl}/local/sign-in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: operator }) });
      const { token } = await signed.json();
      return res.writeHead(200, { ...cors, 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, id_token: 'unused', token_type: 'Bearer', expires_in: 3600 }));
    }
    if (url.pathname === '/logout') {
      seen.logout += 1;
      if (url.searchParams.get('client_id') !== CLIENT_ID) fail('logout: client_id');
      return res.writeHead(302, { location: url.searchParams.get('logout_uri') }).end();
    }
    res.writeHead(404).end();
  } catch (e) {
    console.error(`stand-in IdP: ${e.message}`);
    res.writeHead(500).end(e.message);
  }
});
const idpUrl = `http://127.0.0.1:${await listen(idp)}`;

// ---- The site, as CloudFront serves it: dist/, config.json, /api/* to the API ----
const site = { url: '', tamperState: false };
const types = { html: 'text/html', js: 'text/javascript', css: 'text/css' };
const siteServer = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://site');
  if (url.pathname.startsWith('/api/')) {
    const upstream = await fetch(`${consoleUrl}${url.pathname}${url.search}`, {
      method: req.method,
      headers: req.headers.authorization ? { authorization: req.headers.authorization } : {},
    });
    return res.writeHead(upstream.status, { 'content-type': 'application/json' }).end(await upstream.text());
  }
  if (url.pathname === '/config.json') {
    return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      apiBase: '',
      signIn: { kind: 'cognito', domain: idpUrl, clientId: CLIENT_ID, redirectUri: site.url },
      tileUrl: null,
      pollMs: 2000,
    }));
  }
  const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
  if (!/^[a-z]+\.(html|js|css)$/.test(file)) return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': types[file.split('.').pop()] }).end(readFileSync(new URL(file, dist)));
});
site.url = `http://127.0.0.1:${await listen(siteServer)}/`;

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
try {
  const page = await (await browser.newContext()).newPage();
  // What the page said, for a failure's message.
  page.on('console', (m) => console.error(`page ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  page.on('requestfailed', (r) => console.error(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => r.status() >= 400 && console.error(`response ${r.status()}: ${r.url()}`));
  await page.goto(site.url);
  await page.getByTestId('sign-in').waitFor({ state: 'visible' });
  if (await page.getByTestId('username').isVisible()) fail('the local user list shows on the Cognito sign-in');
  await page.getByTestId('sign-in-button').click();
  await page.locator('#console').waitFor({ state: 'visible' });
  const who = await page.getByTestId('who').textContent();
  if (!who.includes(`local:${operator}`)) fail(`signed in as ${who}`);
  if (page.url() !== site.url) fail(`the code is still in the address: ${page.url()}`);
  if (seen.authorize !== 1 || seen.token !== 1) fail(`authorize ${seen.authorize}, token ${seen.token}`);
  console.log(`SIGNED_IN ${who}`);

  // Signing out: through the managed sign-in's /logout, back to the sign-in page.
  await page.getByTestId('sign-out').click();
  await page.getByTestId('sign-in').waitFor({ state: 'visible' });
  if (seen.logout !== 1) fail('sign-out did not go through /logout');
  if (await page.evaluate(() => sessionStorage.getItem('vigil.console.token'))) fail('the token outlived sign-out');

  // A callback whose state is not the one this tab sent: refused, no token asked for.
  site.tamperState = true;
  await page.getByTestId('sign-in-button').click();
  await page.getByText('without the state this tab sent').waitFor();
  if (seen.token !== 1) fail('a callback with a foreign state reached the token endpoint');
  if (await page.locator('#console').isVisible()) fail('the console shows after a foreign state');
  console.log('STATE_REFUSED');
} finally {
  await browser.close();
  idp.close();
  siteServer.close();
}
