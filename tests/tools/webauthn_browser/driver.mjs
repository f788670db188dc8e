#!/usr/bin/env node
// WebAuthn browser harness: a real browser's WebAuthn client (headless Chromium through
// playwright-core) with a virtual authenticator (the DevTools protocol's WebAuthn domain), driven
// by line-delimited JSON on stdin/stdout so tests in any language can run registrations and
// authentications without a server of ours in the loop.
//
//   node tests/tools/webauthn_browser/driver.mjs [--transport=internal|usb] [--user-verified=false]
//                                                [--user-verification=false]
//
// It serves page.html/page.js on http://localhost:<free port> (localhost is a secure context, so
// WebAuthn works over plain HTTP; the RP id is "localhost"), opens it in Chromium, adds a CTAP2
// authenticator with resident keys and user verification, and then answers one JSON line per
// command line, in order. `--user-verified=false` starts with verification failing (as `set_uv`
// false does; Chromium then refuses every `create`); `--user-verification=false` makes an
// authenticator that cannot verify users at all (a security key without a PIN), whose
// credentials Chromium makes and uses without UV unless the page requires it.
//
//   {"op":"info"}                         {"ok":true,"origin":"http://localhost:PORT","rp_id":"localhost",...}
//   {"op":"create","publicKey":{...}}     navigator.credentials.create; binary fields base64url
//   {"op":"get","publicKey":{...}}        navigator.credentials.get; no allowCredentials: discoverable
//   {"op":"set_uv","verified":false}      WebAuthn.setUserVerified
//   {"op":"credentials"}                  WebAuthn.getCredentials (ids, sign counts; no private keys)
//   {"op":"quit"}                         {"ok":true}, then the browser is closed and the driver exits
//
// In create/get options, `challenge`, `user.id` and the credential descriptors' `id` are base64url;
// `challenge_text` instead of `challenge` is a string whose UTF-8 bytes are the challenge (what
// privacyIDEA's passkey clients do). A ceremony the browser refuses answers
// {"ok":false,"error":"<name>: <message>"} and the driver keeps running. Setup problems (Chromium or
// playwright-core missing, the browser not starting) end it with exit status 2 and one line on
// stderr. End of stdin is the same as quit.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { launchChromium } from '../chromium.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const RP_ID = 'localhost';

function fatal(message) {
  process.stderr.write(`webauthn driver: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { transport: 'internal', userVerified: true, userVerification: true };
  for (const arg of argv) {
    const [key, value] = arg.split('=', 2);
    if (key === '--transport' && (value === 'internal' || value === 'usb')) opts.transport = value;
    else if (key === '--user-verified' && (value === 'true' || value === 'false')) opts.userVerified = value === 'true';
    else if (key === '--user-verification' && (value === 'true' || value === 'false')) opts.userVerification = value === 'true';
    else fatal(`unknown argument ${arg} (known: --transport=internal|usb, --user-verified=true|false, --user-verification=true|false)`);
  }
  return opts;
}

function serve() {
  const files = {
    '/': ['page.html', 'text/html; charset=utf-8'],
    '/page.js': ['page.js', 'text/javascript; charset=utf-8'],
  };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://localhost').pathname;
    const file = files[path];
    if (req.method !== 'GET' || !file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    try {
      const body = await readFile(join(here, file[0]));
      res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' }).end(body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e}\n`);
    }
  });
  // Loopback only: Chromium resolves "localhost" to the loopback addresses itself.
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok(server));
  });
}

// CDP's Binary type is standard base64; the protocol here speaks base64url without padding.
function base64ToBase64url(b64) {
  return b64 ? Buffer.from(b64, 'base64').toString('base64url') : null;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = performance.now();
  const server = await serve();
  const origin = `http://localhost:${server.address().port}`;

  const browser = await launchChromium(fatal);
  let quitting = false;
  browser.on('disconnected', () => {
    if (!quitting) fatal('Chromium exited unexpectedly');
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.countersignWebauthn !== undefined);
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      ctap2Version: 'ctap2_1',
      transport: opts.transport,
      hasResidentKey: true,
      hasUserVerification: opts.userVerification,
      isUserVerified: opts.userVerification && opts.userVerified,
      automaticPresenceSimulation: true,
    },
  });
  const startupMs = Math.round(performance.now() - started);

  async function quit(code) {
    quitting = true;
    await browser.close().catch(() => {});
    server.close();
    process.exit(code);
  }

  async function handle(command) {
    switch (command.op) {
      case 'info':
        return {
          ok: true,
          origin,
          rp_id: RP_ID,
          browser: browser.version(),
          transport: opts.transport,
          user_verification: opts.userVerification,
          startup_ms: startupMs,
        };
      case 'create':
      case 'get': {
        if (typeof command.publicKey !== 'object' || command.publicKey === null) {
          return { ok: false, error: `BadCommand: ${command.op} needs a publicKey object` };
        }
        return page.evaluate(([op, options]) => window.countersignWebauthn[op](options), [command.op, command.publicKey]);
      }
      case 'set_uv':
        if (typeof command.verified !== 'boolean') return { ok: false, error: 'BadCommand: set_uv needs verified: true or false' };
        await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: command.verified });
        return { ok: true };
      case 'credentials': {
        const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
        // Chosen fields only: the credential's privateKey (and largeBlob) never leave the driver.
        return {
          ok: true,
          credentials: credentials.map((c) => ({
            id: base64ToBase64url(c.credentialId),
            rpId: c.rpId ?? null,
            userHandle: base64ToBase64url(c.userHandle),
            signCount: c.signCount,
            isResidentCredential: c.isResidentCredential,
            backupEligibility: c.backupEligibility ?? null,
            backupState: c.backupState ?? null,
            userName: c.userName ?? null,
            userDisplayName: c.userDisplayName ?? null,
          })),
        };
      }
      default:
        return { ok: false, error: `BadCommand: unknown op ${JSON.stringify(command.op)} (info, create, get, set_uv, credentials, quit)` };
    }
  }

  // Whoever reads the answers went away (EPIPE): nothing more to do than close the browser.
  process.stdout.on('error', () => quit(0));
  const answer = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    let command;
    try {
      command = JSON.parse(line);
    } catch (e) {
      answer({ ok: false, error: `BadCommand: not JSON: ${e.message}` });
      continue;
    }
    if (command && command.op === 'quit') {
      answer({ ok: true });
      await quit(0);
    }
    try {
      answer(await handle(command ?? {}));
    } catch (e) {
      answer({ ok: false, error: `DriverError: ${String(e.message).split('\n')[0]}` });
    }
  }
  await quit(0);
}

main().catch((e) => fatal(`setup failed: ${String(e && e.stack ? e.stack : e).split('\n')[0]}`));
