// Two people in two browser contexts go through the whole first day: Ada registers and creates
// an organization, invites Bob by link, Bob registers and accepts, they talk both ways in a
// room (typing, read receipts), Ada sends an image, the server restarts, and afterwards both
// see every message once, in order. Ada uses a desktop window, Bob a 360 px phone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OUTPUT, PNG, Server, accessibilityProblems, browser, messageTexts, waitFor, shownErrors } from './harness.mjs';

const PASSWORD = 'correct horse battery';
let server;
let chromium;

before(async () => {
  server = await Server.start();
  chromium = await browser();
});

after(async () => {
  await chromium?.close();
  await server?.close();
});

async function shot(page, name) {
  await page.screenshot({ path: join(OUTPUT, `${name}.png`) });
}

async function register(page, first, email, notice) {
  if (notice) await page.getByText(notice).waitFor();
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('First name').fill(first);
  await page.getByLabel('Email address').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
}

async function expectNoSeriousProblems(page, where) {
  const problems = await accessibilityProblems(page);
  assert.deepEqual(problems, [], `accessibility problems on ${where}`);
}

test('Ada and Bob: register, invite by link, chat live, upload, survive a restart', async () => {
  const adaContext = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const bobContext = await chromium.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const ada = await adaContext.newPage();
  const bob = await bobContext.newPage();
  const errors = [];
  for (const page of [ada, bob]) {
    page.on('pageerror', (error) => errors.push(String(error)));
    page.on('dialog', (dialog) => dialog.accept());
  }

  // The page itself: served with a strict policy; its first load measured over the wire.
  const loaded = [];
  const record = (r) => loaded.push(r);
  ada.on('requestfinished', record);
  const response = await ada.goto(server.url + '/');
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  await ada.getByRole('heading', { name: 'Sign in' }).waitFor();
  await ada.waitForLoadState('networkidle');
  ada.off('requestfinished', record);
  let wire = 0;
  for (const request of loaded) {
    const sizes = await request.sizes();
    wire += sizes.responseBodySize + sizes.responseHeadersSize;
  }
  const firstLoad = { requests: loaded.length, bytesOverTheWire: wire, urls: loaded.map((r) => new URL(r.url()).pathname) };
  writeFileSync(join(OUTPUT, 'first-load.json'), `${JSON.stringify(firstLoad, null, 2)}\n`);
  console.log(`first load: ${wire} bytes in ${loaded.length} requests`);
  assert.ok(wire <= 150 * 1024, `first load ${wire} bytes`);
  await shot(ada, 'sign-in');
  await expectNoSeriousProblems(ada, 'the sign-in page');

  // Ada registers and creates an organization.
  await register(ada, 'Ada', 'ada@example.com');
  await ada.getByRole('heading', { name: 'New organization' }).waitFor();
  await shot(ada, 'new-organization');
  await ada.getByLabel('Name', { exact: true }).fill('Acme');
  await ada.getByRole('button', { name: 'Create organization' }).click();
  await ada.getByRole('button', { name: 'Invite people' }).waitFor();

  // A room first, so that Bob is seated in it when he joins the organization.
  await ada.getByRole('button', { name: '+ New room' }).click();
  await ada.getByLabel('Name', { exact: true }).fill('general');
  await ada.getByRole('button', { name: 'Create' }).click();
  await ada.getByRole('heading', { name: '# general' }).waitFor();

  // She invites Bob and copies the link.
  await ada.getByRole('button', { name: 'Invite people' }).click();
  await ada.getByLabel('Email address').fill('bob@example.com');
  await ada.getByRole('button', { name: 'Invite', exact: true }).click();
  const link = await ada.getByLabel('Invitation link').inputValue();
  assert.match(link, /\/#\/invite\/[A-Za-z0-9_-]{40,}$/);
  await shot(ada, 'invitation-link');
  await ada.getByRole('button', { name: 'Done' }).click();

  // Bob opens the link on his phone, registers and accepts.
  await bob.goto(link);
  await register(bob, 'Bob', 'bob@example.com', 'Sign in or register with the invited address to join.');
  await bob.getByRole('button', { name: 'Accept the invitation' }).click();
  await bob.getByRole('link', { name: '# general' }).click();
  await bob.getByRole('heading', { name: '# general' }).waitFor();

  // Ada types: Bob sees it; she sends: Bob gets the message; Bob's reading shows on Ada's side.
  const adaBox = ada.getByLabel('Message # general');
  const bobBox = bob.getByLabel('Message # general');
  await adaBox.pressSequentially('Hello Bob, welcome!');
  await bob.getByText('Ada is typing…').waitFor();
  await adaBox.press('Enter');
  await bob.getByText('Hello Bob, welcome!').waitFor();
  await waitFor(async () => !(await bob.getByText('Ada is typing…').isVisible()), 10_000, 'the typing line to clear');
  await ada.getByText('Seen by Bob').waitFor();

  // Bob answers; Ada sees it live and Bob sees her read it.
  await bobBox.pressSequentially('Hi Ada! Glad to be here.');
  await ada.getByText('Bob is typing…').waitFor();
  await bobBox.press('Enter');
  await ada.getByText('Hi Ada! Glad to be here.').waitFor();
  await bob.getByText('Seen by Ada').waitFor();
  await shot(ada, 'room-desktop');
  await shot(bob, 'room-phone');
  await expectNoSeriousProblems(ada, 'the room (desktop)');
  await expectNoSeriousProblems(bob, 'the room (phone)');

  // Ada uploads an image: a preview while it goes, then the stored image for both.
  await ada.locator('input[type=file]').setInputFiles({ name: 'diagram.png', mimeType: 'image/png', buffer: PNG });
  for (const page of [ada, bob]) {
    await waitFor(() => page.locator('ol.messages:not(.pending) img.preview').evaluate((img) => img.complete && img.naturalWidth === 2), 20_000, 'the image to load');
  }
  await bob.getByText('diagram.png').first().waitFor();

  // The server restarts (SIGTERM: sockets closed with 1012). Meanwhile Ada sends: her message
  // waits, marked, and goes out once the server is back.
  await server.stop();
  await ada.getByText('Reconnecting…').waitFor();
  await adaBox.fill('Sent while the server was down');
  await adaBox.press('Enter');
  await ada.getByText(/Not sent/).waitFor();
  await server.launch();
  const adaToken = await server.signIn('ada@example.com', PASSWORD);
  const rooms = await server.api('GET', '/api/rooms/', undefined, adaToken);
  await server.api('POST', `/api/rooms/${rooms[0].id}/messages/`, { body: 'Posted over REST right after the restart', client_msg_id: 'rest-1' }, adaToken);
  for (const page of [ada, bob]) {
    await waitFor(async () => !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to reconnect');
  }
  await bobBox.fill('Back again');
  await bobBox.press('Enter');

  const expected = [
    'Hello Bob, welcome!',
    'Hi Ada! Glad to be here.',
    'Sent while the server was down',
    'Posted over REST right after the restart',
    'Back again',
  ];
  for (const [name, page] of [['Ada', ada], ['Bob', bob]]) {
    await waitFor(async () => (await messageTexts(page)).length >= expected.length, 20_000, `${name}'s messages`);
    const seen = await messageTexts(page);
    // The one Ada sent while down is stored when she retries, which may be after the REST post.
    assert.deepEqual([...seen].sort(), [...expected].sort(), `${name} sees each message once`);
    assert.deepEqual(seen.filter((t) => t !== 'Sent while the server was down'),
      expected.filter((t) => t !== 'Sent while the server was down'), `${name} sees them in order`);
    const ids = await page.locator('ol.messages:not(.pending) .msg').evaluateAll((nodes) => nodes.map((n) => Number(n.dataset.id)));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `${name}'s messages are in id order`);
  }
  assert.equal(await ada.locator('ol.pending .msg').count(), 0, 'nothing left pending');

  // Ada's organization page: members, invitations, webhooks.
  await ada.getByRole('link', { name: 'Organization settings' }).click();
  await ada.getByRole('cell', { name: 'bob@example.com', exact: true }).waitFor();
  await shot(ada, 'organization-settings');
  await expectNoSeriousProblems(ada, 'the organization page');

  assert.deepEqual(errors, [], 'no script errors');
  for (const [name, page] of [['Ada', ada], ['Bob', bob]]) assert.deepEqual(await shownErrors(page), [], `errors shown to ${name}`);
  await adaContext.close();
  await bobContext.close();
});
