#!/usr/bin/env node
// Self-check of the WebAuthn browser harness, for a person to see it work:
//
//   node tests/tools/webauthn_browser/selftest.mjs
//
// Starts driver.mjs exactly as a test would (a child process spoken to in JSON lines), registers
// a passkey ("direct" attestation), authenticates with it by id, then usernameless, then with a
// UTF-8 text challenge, and prints what came back: the attestation format, clientDataJSON, the
// authenticatorData flags and sign counts, and how long each step took. It checks only the shape
// and the obvious (challenge echoed, counter advancing); the signatures are verified by the Rust
// test tests/tests/integration/webauthn_verifier/chromium.rs. Exits non-zero when something is off.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const driverPath = join(dirname(fileURLToPath(import.meta.url)), 'driver.mjs');

function startDriver() {
  const child = spawn(process.execPath, [driverPath], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  child.on('exit', (code) => {
    if (code !== 0) {
      process.stderr.write(`selftest: the driver exited with status ${code}\n`);
      process.exit(1);
    }
  });
  return async (command) => {
    child.stdin.write(`${JSON.stringify(command)}\n`);
    const { value, done } = await lines.next();
    if (done) throw new Error('the driver closed its output');
    return JSON.parse(value);
  };
}

// Just enough CBOR (RFC 8949) to read an attestationObject: maps, arrays, strings, integers.
function decodeCbor(bytes) {
  let at = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  function length(info) {
    if (info < 24) return info;
    if (info === 24) return view.getUint8(at++);
    if (info === 25) { const v = view.getUint16(at); at += 2; return v; }
    if (info === 26) { const v = view.getUint32(at); at += 4; return v; }
    throw new Error(`CBOR length encoding ${info} is not supported here`);
  }
  function item() {
    const first = view.getUint8(at++);
    const major = first >> 5;
    const n = length(first & 0x1f);
    switch (major) {
      case 0: return n;
      case 1: return -1 - n;
      case 2: { const b = bytes.subarray(at, at + n); at += n; return b; }
      case 3: { const t = new TextDecoder().decode(bytes.subarray(at, at + n)); at += n; return t; }
      case 4: return Array.from({ length: n }, item);
      case 5: { const m = new Map(); for (let i = 0; i < n; i++) { const k = item(); m.set(k, item()); } return m; }
      default: throw new Error(`CBOR major type ${major} is not supported here`);
    }
  }
  return item();
}

function authData(bytes) {
  const flags = bytes[32];
  const names = [[0x01, 'UP'], [0x04, 'UV'], [0x08, 'BE'], [0x10, 'BS'], [0x40, 'AT'], [0x80, 'ED']];
  return {
    flags: names.filter(([bit]) => flags & bit).map(([, name]) => name).join('|'),
    signCount: new DataView(bytes.buffer, bytes.byteOffset).getUint32(33),
    aaguid: flags & 0x40 ? Buffer.from(bytes.subarray(37, 53)).toString('hex') : undefined,
  };
}

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const fromB64u = (text) => new Uint8Array(Buffer.from(text, 'base64url'));
let failed = false;
function check(condition, what) {
  if (!condition) {
    failed = true;
    console.log(`  FAIL: ${what}`);
  }
}

async function timed(label, send, command) {
  const t = performance.now();
  const answer = await send(command);
  const ms = Math.round(performance.now() - t);
  console.log(`${label} (${ms} ms)`);
  if (!answer.ok) {
    failed = true;
    console.log(`  FAIL: ${answer.error}`);
  }
  return answer;
}

function showClientData(response, challengeB64u) {
  const clientData = JSON.parse(Buffer.from(response.clientDataJSON, 'base64url').toString('utf8'));
  console.log(`  clientDataJSON: ${JSON.stringify(clientData)}`);
  check(clientData.challenge === challengeB64u, 'clientDataJSON carries the challenge');
}

const t0 = performance.now();
const send = startDriver();
const info = await send({ op: 'info' });
console.log(`driver ready after ${Math.round(performance.now() - t0)} ms (browser start ${info.startup_ms} ms): Chromium ${info.browser}, origin ${info.origin}, RP id ${info.rp_id}`);

const userId = randomBytes(16);
const regChallenge = randomBytes(32);
const reg = await timed('create (attestation direct, resident key, UV required)', send, {
  op: 'create',
  publicKey: {
    challenge: b64u(regChallenge),
    rp: { id: info.rp_id, name: 'Countersign selftest' },
    user: { id: b64u(userId), name: 'selftest', displayName: 'Self Test' },
    pubKeyCredParams: [{ type: 'public-key', alg: -7 }, { type: 'public-key', alg: -257 }],
    attestation: 'direct',
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    timeout: 30000,
  },
});
if (reg.ok) {
  const object = decodeCbor(fromB64u(reg.response.attestationObject));
  const stmt = object.get('attStmt');
  const x5c = stmt.get('x5c');
  console.log(`  credential ${reg.id} (${reg.authenticatorAttachment}, transports ${reg.response.transports.join(',')})`);
  console.log(`  attestation fmt ${object.get('fmt')}, attStmt alg ${stmt.get('alg')}, ${x5c ? `x5c of ${x5c.length} certificate(s), ${x5c[0].length} bytes` : 'no x5c (self attestation)'}`);
  console.log(`  authenticatorData: ${JSON.stringify(authData(object.get('authData')))}`);
  showClientData(reg.response, b64u(regChallenge));
}

let lastCount = -1;
async function authenticate(label, publicKey, expectedChallenge) {
  const a = await timed(label, send, { op: 'get', publicKey: { rpId: info.rp_id, userVerification: 'required', timeout: 30000, ...publicKey } });
  if (!a.ok) return;
  const data = authData(fromB64u(a.response.authenticatorData));
  console.log(`  authenticatorData: ${JSON.stringify(data)}, userHandle ${a.response.userHandle}, signature ${fromB64u(a.response.signature).length} bytes`);
  showClientData(a.response, expectedChallenge);
  check(a.id === reg.id, 'the assertion is by the registered credential');
  check(a.response.userHandle === b64u(userId), 'userHandle is the user id');
  check(data.signCount > lastCount, 'the sign count advanced');
  lastCount = data.signCount;
}

if (reg.ok) {
  const c1 = randomBytes(32);
  await authenticate('get by credential id', { challenge: b64u(c1), allowCredentials: [{ type: 'public-key', id: reg.rawId }] }, b64u(c1));
  const c2 = randomBytes(32);
  await authenticate('get usernameless (no allowCredentials)', { challenge: b64u(c2) }, b64u(c2));
  const text = `selftest challenge ${Date.now()} \u00e4\u00f6\u00fc`;
  await authenticate(`get with challenge_text ${JSON.stringify(text)}`, { challenge_text: text }, b64u(Buffer.from(text, 'utf8')));
  const creds = await send({ op: 'credentials' });
  console.log(`authenticator holds: ${JSON.stringify(creds.credentials)}`);
  check(creds.credentials.length === 1 && creds.credentials[0].signCount === lastCount, 'the authenticator counted what the assertions said');
}
await send({ op: 'quit' });
console.log(failed ? 'selftest: FAILED' : 'selftest: the harness works');
process.exitCode = failed ? 1 : 0;
