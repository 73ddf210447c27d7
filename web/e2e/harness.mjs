// What the browser tests share: a single-node server of their own (fresh data directory, free
// port, restartable), Debian's chromium started so it never reaches for the network, and
// helpers that wait for conditions rather than for time.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** Screenshots land here; the current ones are copied to docs/screenshots by hand. */
export const OUTPUT = process.env.CHATBOARD_E2E_OUTPUT || join(here, 'output');
mkdirSync(OUTPUT, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A `chatboard` single node on its own data directory; `restart()` keeps both. */
export class Server {
  static async start(env = {}) {
    const binary = process.env.CHATBOARD_BIN;
    if (!binary) throw new Error('CHATBOARD_BIN must name the chatboard binary');
    const server = new Server(binary, await freePort(), mkdtempSync(join(tmpdir(), 'chatboard-e2e-')), env);
    await server.launch();
    return server;
  }

  constructor(binary, port, dataDir, env) {
    this.binary = binary;
    this.port = port;
    this.dataDir = dataDir;
    this.env = env;
    this.url = `http://127.0.0.1:${port}`;
    this.log = '';
  }

  async launch() {
    // A clean environment: the single node on its own data directory, whatever the caller's
    // DATABASE_URL, NATS_URL or CHATBOARD_* say (CI sets them for the other suites).
    const inherited = Object.fromEntries(['PATH', 'HOME', 'TMPDIR', 'LANG']
      .filter((name) => process.env[name] !== undefined).map((name) => [name, process.env[name]]));
    this.process = spawn(this.binary, [], {
      env: {
        ...inherited,
        CHATBOARD_DATA_DIR: this.dataDir,
        CHATBOARD_ADDR: `127.0.0.1:${this.port}`,
        RUST_LOG: 'warn',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (chunk) => { this.log = (this.log + chunk).slice(-20_000); };
    this.process.stdout.on('data', keep);
    this.process.stderr.on('data', keep);
    this.exited = new Promise((resolve) => this.process.once('exit', resolve));
    await waitFor(async () => {
      if (this.process.exitCode !== null) throw new Error(`chatboard exited: ${this.log}`);
      try {
        return (await fetch(`${this.url}/health/ready`)).ok;
      } catch {
        return false;
      }
    }, 60_000, 'the server to answer');
  }

  /** Waits until the server has finished what earlier requests set off (its outbox relay,
   * digests): its CPU time grows by less than 2% of a core over half a second. */
  async settled() {
    const cpu = () => {
      const fields = readFileSync(`/proc/${this.process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(fields[11]) + Number(fields[12]);
    };
    let last = cpu();
    await waitFor(async () => {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const now = cpu();
      const busy = now - last;
      last = now;
      return busy <= 1;
    }, 120_000, 'the server to settle');
  }

  /** SIGTERM (sockets are closed with 1012), then start again on the same port and data. */
  async restart() {
    await this.stop();
    await this.launch();
  }

  async stop() {
    if (!this.process || this.process.exitCode !== null) return;
    this.process.kill('SIGTERM');
    await this.exited;
  }

  /** Stops the server for good and deletes its data directory. */
  async close() {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Calls the API directly (setup and checks that are not what the test is about). */
  async api(method, path, body, token) {
    const headers = { 'Content-Type': 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(this.url + path, { method, headers, body: body && JSON.stringify(body) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async signIn(email, password) {
    return (await this.api('POST', '/auth/token/', { email, password })).access;
  }
}

/** Debian's chromium, headless, kept off the network (no updates, no metrics, no first run). */
export async function browser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run', '--disable-default-apps', '--disable-sync'],
  });
}

/** Polls `check` until it returns something truthy; fails after `ms` with `what`. */
export async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
      if (String(error).includes('exited')) throw error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's serious and critical violations on the page as it is now. */
export async function accessibilityProblems(page) {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
}

/** The confirmed messages' texts in a page's open room, top to bottom. */
export async function messageTexts(page) {
  return page.locator('ol.messages:not(.pending) .msg .body').allTextContents();
}

/** A small PNG (a 2x2 image), for the upload test. */
export const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==',
  'base64',
);

/** The password of the team `startTeam` sets up. */
export const PASSWORD = 'correct horse battery';

/** What most files start before their tests: a server without the per-address and per-user
 * limits (every test signs in from one address, and most as Ada, one after the other: those
 * limits are not what they are about, and a fast run could reach them), the browser, and the
 * team (`team`, with `PASSWORD`). A part that fails to start stops those started before it. */
export async function startTeam() {
  const server = await Server.start({ CHATBOARD_RATE_LIMIT_PER_IP: '0', CHATBOARD_RATE_LIMIT_PER_USER: '0' });
  let chromiumBrowser;
  try {
    chromiumBrowser = await browser();
    return { server, chromium: chromiumBrowser, setup: await team(server, PASSWORD) };
  } catch (error) {
    await chromiumBrowser?.close();
    await server.close();
    throw error;
  }
}

/** Stops what `startTeam` started. */
export async function stopTeam({ server, chromium: chromiumBrowser }) {
  await chromiumBrowser?.close();
  await server?.close();
}

/** Ada (ADMIN) and Bob in an org with a PUBLIC room, set up over the API. */
export async function team(server, password) {
  for (const [first, email] of [['Ada', 'ada@example.com'], ['Bob', 'bob@example.com']]) {
    await server.api('POST', '/auth/register/', { email, password, first_name: first });
  }
  const ada = await server.signIn('ada@example.com', password);
  const bob = await server.signIn('bob@example.com', password);
  const org = await server.api('POST', '/api/orgs/', { name: 'Acme' }, ada);
  const invite = await server.api('POST', `/api/orgs/${org.id}/invite/`, { email: 'bob@example.com' }, ada);
  await server.api('POST', '/api/orgs/accept-invite/', { token: invite.token }, bob);
  const room = await server.api('POST', '/api/rooms/', { org: org.id, name: 'general' }, ada);
  return { ada, bob, org, room };
}

/** A page already signed in as `email`: its refresh token is put where the client keeps it. */
export async function signedInPage(context, server, email, password) {
  const tokens = await server.api('POST', '/auth/token/', { email, password });
  await context.addInitScript((refresh) => {
    if (!sessionStorage.getItem('seeded')) {
      localStorage.setItem('chatboard.refresh', refresh);
      sessionStorage.setItem('seeded', '1');
    }
  }, tokens.refresh);
  const page = await context.newPage();
  page.on('dialog', (dialog) => dialog.accept());
  return page;
}

/** The error notices a page has shown since it loaded. */
export async function shownErrors(page) {
  return page.evaluate(() => window.chatboardErrors || []);
}

/** Routes `page`'s WebSockets through the test, which can drop them and refuse new ones while
 * the rest (REST) works: `await sockets.drop()` closes them (1011) and keeps refusing until
 * `sockets.allow()`; `sockets.silence()` makes the open ones a dead connection (nothing passes
 * either way, nothing closes), while new ones work. Call before the page loads;
 * `sockets.opened()` says how many have opened. */
export async function droppableSockets(page) {
  let blocked = false;
  let opened = 0;
  const open = [];
  const received = [];
  const sent = [];
  await page.routeWebSocket(/\/ws\//, (ws) => {
    if (blocked) {
      ws.close({ code: 1011, reason: 'the test keeps the socket down' });
      return;
    }
    const server = ws.connectToServer();
    const link = { ws, silent: false };
    ws.onMessage((frame) => {
      sent.push(frame);
      return link.silent || server.send(frame);
    });
    server.onMessage((frame) => {
      received.push(frame);
      return link.silent || ws.send(frame);
    });
    opened += 1;
    open.push(link);
  });
  return {
    opened: () => opened,
    /** Every frame the page sent on any of its sockets, parsed, in order. */
    sent: () => sent.map((frame) => {
      try {
        return JSON.parse(frame);
      } catch {
        return {};
      }
    }),
    /** Every frame the server sent on any of the page's sockets, parsed. */
    received: () => received.map((frame) => {
      try {
        return JSON.parse(frame);
      } catch {
        return {};
      }
    }),
    async drop() {
      blocked = true;
      for (const link of open.splice(0)) await link.ws.close({ code: 1011, reason: 'dropped by the test' });
    },
    allow() {
      blocked = false;
    },
    silence() {
      for (const link of open.splice(0)) link.silent = true;
    },
    /** Hands `frame` to the page as if the server had sent it on the open socket. */
    inject(frame) {
      open.at(-1)?.ws.send(JSON.stringify(frame));
    },
  };
}
