#!/usr/bin/env node
// The web console in a real browser (issue 18): headless Chromium (Debian's) through
// playwright-core runs a help-desk day against a daemon the Rust test started, and prints one
// JSON object with what it saw; the test (tests/tests/integration/console_browser.rs) asserts.
//
//   node tests/tools/console_browser/flow.mjs '<json>'
//
// The JSON names: base (http://localhost:PORT, the console's origin and the passkeys' relying
// party `localhost`), api (http://127.0.0.1:PORT, for /validate/check from here), admin {name,
// password, secret (base32 TOTP)}, user {login, realm}, clock_file (the daemon's clock offset
// in ms, which the flow moves), shots (a directory for screenshots).
// The flow: sign in with password and a TOTP code computed here; find the user; enrol a TOTP
// token and read its secret from the page (once); authenticate with it at /validate/check; fail
// twice, reset the fail counter; disable the token and see /validate/check refuse; delete it,
// which first asks to confirm both factors again; register a passkey on the account page with
// the DevTools protocol's virtual authenticator, and a security key for the user on theirs; search the audit for each action; sign out,
// and sign in again with password and the passkey instead of a code; sign out. On every page it
// records the CSP header and whether the page has inline script or style.

import { createHmac } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { launchChromium } from '../chromium.mjs';


function fatal(message) {
  process.stderr.write(`console flow: ${message}\n`);
  process.exit(2);
}

function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, value = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | i; bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  return Buffer.from(out);
}

// RFC 6238 with SHA-1, 6 digits, 30 s steps; `offset` in steps.
function totp(secret, offset = 0) {
  const counter = Math.floor(Date.now() / 1000 / 30) + offset;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const h = createHmac('sha1', base32(secret)).update(msg).digest();
  const o = h[h.length - 1] & 0xf;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 1_000_000).padStart(6, '0');
}

async function main() {
  const cfg = JSON.parse(process.argv[2] || '{}');
  const browser = await launchChromium(fatal);
  mkdirSync(cfg.shots, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const seen = { pages: [], steps: {} };

  // Every console document: its CSP, and inline code in it.
  page.on('response', async (r) => {
    if (r.request().resourceType() !== 'document' || !r.url().startsWith(cfg.base + '/console')) return;
    const csp = r.headers()['content-security-policy'] || '';
    let inline = false;
    try {
      const body = await r.text();
      inline = /<script(?![^>]*\bsrc=)[^>]*>/i.test(body) || /<style[\s>]/i.test(body) || /\son[a-z]+\s*=/i.test(body) || /\sstyle\s*=/i.test(body);
    } catch { /* a redirect has no body */ }
    seen.pages.push({ url: r.url(), status: r.status(), csp, inline, frame: r.headers()['x-frame-options'] || '' });
  });
  const shot = async (name) => page.screenshot({ path: join(cfg.shots, `${name}.png`), fullPage: true });
  const check = async (pass) => {
    const r = await fetch(`${cfg.api}/validate/check`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ user: cfg.user.login, realm: cfg.user.realm, pass }).toString(),
    });
    const j = await r.json();
    return j.result && j.result.value === true;
  };

  try {
    await flow(cfg, page, context, seen, shot, check);
  } catch (e) {
    await shot('failure').catch(() => {});
    const text = await page.content().catch(() => '');
    fatal(`${e.message.split('\n')[0]} at ${page.url()}; the page: ${text.slice(0, 2000)}`);
  }
  await browser.close();
  process.stdout.write(JSON.stringify(seen) + '\n');
}

async function flow(cfg, page, context, seen, shot, check) {
  // Sign in: password and a TOTP code.
  await page.goto(`${cfg.base}/console/`);
  seen.steps.redirected_to_sign_in = page.url().includes('/console/sign-in');
  await shot('sign-in');
  await page.fill('#name', cfg.admin.name);
  await page.fill('#password', 'not the password');
  await page.fill('#code', totp(cfg.admin.secret));
  await page.click('button[type=submit]');
  seen.steps.wrong_password_refused = (await page.locator('.error').count()) > 0 && page.url().includes('/console/sign-in');
  await page.fill('#name', cfg.admin.name);
  await page.fill('#password', cfg.admin.password);
  await page.fill('#code', totp(cfg.admin.secret));
  await page.click('button[type=submit]');
  await page.waitForURL(/\/console\/$/);
  seen.steps.signed_in = (await page.textContent('h1')) === 'Dashboard';
  const cookies = await context.cookies();
  const c = cookies.find((k) => k.name === 'cs_console');
  seen.steps.cookie = c ? { httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite } : null;
  await shot('dashboard');

  // Find the user.
  await page.click('nav a[href="/console/users"]');
  await page.fill('input[name=q]', cfg.user.login);
  await page.click('form.search button[type=submit]');
  await shot('users');
  await page.click(`table a:text-is("${cfg.user.login}")`);
  seen.steps.user_page = (await page.textContent('h1')).startsWith(cfg.user.login);

  // Enrol a TOTP token and read its secret from the page, once.
  await page.selectOption('#type', 'totp');
  await page.fill('#description', 'phone from the console');
  await page.click('form[action$="/enrol"] button[type=submit]');
  const secret = (await page.textContent('[data-secret]')).trim();
  const serial = (await page.textContent('.notice code')).trim();
  seen.steps.enrolled = { serial, secret_len: secret.length };
  await shot('enrolled');
  await page.click('a.button:text-is("Done")');
  seen.steps.secret_gone = (await page.locator('[data-secret]').count()) === 0;
  await shot('user');

  // Authenticate with it over /validate/check.
  seen.steps.check_accepted = await check(totp(secret));
  // Two wrong codes, then reset the fail counter on the page.
  await check('000000');
  await check('000001');
  await page.reload();
  const row = page.locator('tr', { has: page.locator(`code:text-is("${serial}")`) });
  seen.steps.fails_before_reset = (await row.locator('td').nth(3).textContent()).trim();
  await row.locator('button[data-action=reset]').click();
  seen.steps.reset_notice = (await page.textContent('.notice')).trim();
  seen.steps.fails_after_reset = (await page.locator('tr', { has: page.locator(`code:text-is("${serial}")`) }).locator('td').nth(3).textContent()).trim();

  // Disable the token and see the check refused (the next step's code: the previous was spent).
  await page.locator('tr', { has: page.locator(`code:text-is("${serial}")`) }).locator('button[data-action=disable]').click();
  seen.steps.disabled_state = (await page.locator('tr', { has: page.locator(`code:text-is("${serial}")`) }).locator('td').nth(2).textContent()).trim();
  seen.steps.check_after_disable = await check(totp(secret, 1));

  // A form without the CSRF token is refused (the browser's own session, a forged post).
  const forged = await page.evaluate(async (url) => {
    const r = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: '' });
    return r.status;
  }, `${cfg.base}/console/tokens/${serial}/enable`);
  seen.steps.forged_without_csrf = forged;

  // Six minutes later by the daemon's clock (the test's clock file), the sign-in is no longer
  // fresh proof: deleting the token, a destructive action, asks for both factors again first,
  // then comes back to the user's page, where the delete goes through. The code is the one of
  // the daemon's time.
  const ahead = 6 * 60;
  writeFileSync(cfg.clock_file, String(ahead * 1000));
  const tokenRow = () => page.locator('tr', { has: page.locator(`code:text-is("${serial}")`) });
  await tokenRow().locator('button[data-action=delete]').click();
  seen.steps.reauth_asked = page.url().includes('/console/reauth');
  await shot('reauth');
  await page.fill('#password', cfg.admin.password);
  await page.fill('#code', totp(cfg.admin.secret, ahead / 30));
  await page.click('form[action="/console/reauth"] button[type=submit]');
  await page.waitForURL((u) => !u.pathname.startsWith('/console/reauth'));
  await tokenRow().locator('button[data-action=delete]').click();
  seen.steps.deleted_after_reauth = (await page.textContent('.notice')).includes('deleted') && (await tokenRow().count()) === 0;

  // Register a passkey on the account page (the confirmation above is still fresh), with a
  // virtual CTAP2 authenticator that holds resident keys and verifies its user.
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.click('header .who a[href="/console/account"]');
  await page.click('button[data-register-passkey]');
  await page.waitForURL(/done=passkey/, { timeout: 15000 }).catch(() => {});
  seen.steps.passkey_registered = page.url().includes('done=passkey') && (await page.locator('td:text-is("Passkey")').count()) === 1;
  await shot('account');

  // Register a security key for the user at this computer (the same virtual authenticator
  // stands for the user's key), from the user's page.
  await page.goto(`${cfg.base}/console/users/${cfg.user.realm}/${cfg.user.login}`);
  await page.click('button[data-register-passkey][data-type=webauthn]');
  await page.waitForURL(/done=registered/, { timeout: 15000 }).catch(() => {});
  seen.steps.user_key_registered = page.url().includes('done=registered') && (await page.locator('td:text-is("webauthn")').count()) === 1;

  // Keyboard: the first Tab reaches the skip link, and Enter on it puts the focus on the main
  // content. A tablet (768x1024): the user's page fits its width (wide tables scroll inside).
  await page.goto(`${cfg.base}/console/users/${cfg.user.realm}/${cfg.user.login}`);
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement.className);
  await page.keyboard.press('Enter');
  const after = await page.evaluate(() => document.activeElement.id);
  seen.steps.keyboard = { first, after };
  await page.setViewportSize({ width: 768, height: 1024 });
  await page.reload();
  seen.steps.tablet_fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  await shot('user-tablet');
  await page.setViewportSize({ width: 1280, height: 800 });

  // Search the audit for each action.
  await page.click('nav a[href="/console/audit"]');
  const found = {};
  for (const action of ['console/sign-in', 'token/init', 'validate/check', 'token/reset', 'token/disable', 'console/reauthenticate', 'token/delete']) {
    await page.fill('input[name=action]', action);
    await page.fill('input[name=serial]', action.startsWith('console') || action === 'token/delete' ? '' : serial);
    await page.click('form.search button[type=submit]');
    found[action] = await page.locator('tbody tr').count();
  }
  seen.steps.audit = found;
  await page.fill('input[name=action]', '');
  await page.fill('input[name=serial]', '');
  await page.click('form.search button[type=submit]');
  await shot('audit');
  // Verify the chain from the audit page; the dashboard then says it verifies.
  await page.goto(`${cfg.base}/console/audit?verify=1`);
  await page.goto(`${cfg.base}/console/`);
  seen.steps.dashboard_chain_verifies = (await page.locator('.badge.ok:text-is("verifies")').count()) === 1;
  await page.goto(`${cfg.base}/console/system/policies`);
  await shot('policies');

  // Sign out: the session is gone.
  await page.click('header form[action="/console/sign-out"] button');
  await page.waitForURL(/sign-in/);
  await page.goto(`${cfg.base}/console/users`);
  seen.steps.after_sign_out_sign_in = page.url().includes('/console/sign-in');

  // Sign in again with the password and the passkey instead of a code.
  await page.fill('#name', cfg.admin.name);
  await page.fill('#password', cfg.admin.password);
  await page.click('button[data-passkey]');
  await page.waitForURL(/\/console\/users/, { timeout: 15000 }).catch(() => {});
  seen.steps.passkey_sign_in = page.url().includes('/console/users') && (await page.textContent('h1')) === 'Users';
  await page.click('header form[action="/console/sign-out"] button');
  await page.waitForURL(/sign-in/);
}

main().catch((e) => fatal(String(e && e.stack || e)));
