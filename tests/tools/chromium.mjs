// Headless Chromium for the browser tests: Debian's `chromium` (or $COUNTERSIGN_CHROMIUM)
// driven through the playwright-core that scripts/install-deps.sh pins in .tools/node. Shared
// by the WebAuthn driver (webauthn_browser/driver.mjs) and the console flow
// (console_browser/flow.mjs). Setup problems go to `fatal(message)`, naming the fix.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const chromiumPath = process.env.COUNTERSIGN_CHROMIUM || '/usr/bin/chromium';
const toolsDir = join(repo, '.tools', 'node');

async function loadPlaywright(fatal) {
  let entry;
  try {
    entry = createRequire(join(toolsDir, 'package.json')).resolve('playwright-core');
  } catch {
    fatal(`playwright-core is not installed in ${toolsDir}: run scripts/install-deps.sh (it installs the pinned playwright-core with npm)`);
  }
  const module = await import(pathToFileURL(entry).href);
  return module.default ?? module;
}

// The browser, started headless.
export async function launchChromium(fatal) {
  if (!existsSync(chromiumPath)) {
    fatal(`Chromium is not installed at ${chromiumPath}: run scripts/install-deps.sh (it installs Debian's chromium package)`);
  }
  const { chromium } = await loadPlaywright(fatal);
  // Chromium's sandbox refuses to start as root ("Running as root without --no-sandbox is not
  // supported"), and the test runner here often is root (containers, CI). So the sandbox goes
  // only then, and stays on for an ordinary user. (playwright-core itself would always pass
  // --no-sandbox: its chromiumSandbox option defaults to false.)
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  try {
    return await chromium.launch({ executablePath: chromiumPath, headless: true, chromiumSandbox: !asRoot });
  } catch (e) {
    fatal(`Chromium (${chromiumPath}) did not start: ${String(e.message).split('\n')[0]}`);
  }
}
