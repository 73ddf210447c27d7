// What a person notices: keyboard-only use, edits and deletes reaching the other side live,
// clear errors from the API (in the dialog that asked, which keeps what was typed), a new DM
// partner's presence, the focus after a dialog, and the dark theme.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { accessibilityProblems, droppableSockets, messageTexts, OUTPUT, PASSWORD, PNG, shownErrors, signedInPage, startTeam, stopTeam, waitFor } from './harness.mjs';

let server;
let chromium;
let setup;

before(async () => ({ server, chromium, setup } = await startTeam()));
after(() => stopTeam({ server, chromium }));

test('signing in and chatting with the keyboard alone', async () => {
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(server.url + '/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  // The first field has the focus; Tab moves on, Enter submits.
  await page.keyboard.type('bob@example.com');
  await page.keyboard.press('Tab');
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press('Enter');
  await page.getByRole('link', { name: '# general' }).waitFor();

  // Tab to the room (through the org switcher and the room list) and open it with Enter.
  let focused = '';
  for (let i = 0; i < 10 && focused !== '# general'; i += 1) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.textContent?.trim());
  }
  assert.equal(focused, '# general', 'the room link is reachable with Tab');
  await page.keyboard.press('Enter');
  const box = page.getByLabel('Message # general');
  await waitFor(() => box.evaluate((el) => el === document.activeElement), 10_000, 'the composer to have the focus');
  await page.keyboard.type('Typed without a mouse');
  await page.keyboard.press('Enter');
  await page.locator('ol.messages:not(.pending) .msg', { hasText: 'Typed without a mouse' }).waitFor();

  // The messages are one Tab stop (Shift+Tab back from the composer, past the attach button);
  // arrow keys move among them; Tab then reaches the focused message's actions.
  const onMessage = () => page.evaluate(() => document.activeElement?.matches('li.msg') && document.activeElement.textContent);
  for (let i = 0; i < 4 && !(await onMessage()); i += 1) await page.keyboard.press('Shift+Tab');
  assert.match(await onMessage() || '', /Typed without a mouse/, 'the newest message takes the focus');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('ArrowDown');
  assert.match(await onMessage() || '', /Typed without a mouse/);
  for (let i = 0; i < 4 && focused !== 'Edit'; i += 1) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.textContent?.trim());
  }
  assert.equal(focused, 'Edit', 'Edit is reachable with Tab from the message');
  await page.keyboard.press('Enter');
  await page.keyboard.press('End');
  await page.keyboard.type(', edited');
  await page.keyboard.press('Enter');
  await page.getByText('Typed without a mouse, edited').waitFor();

  // A second organization, created from the switcher, and back to the first.
  await page.getByLabel('Organization').selectOption({ label: '+ New organization' });
  await page.getByLabel('Name', { exact: true }).fill('Side project');
  await page.getByRole('button', { name: 'Create organization' }).click();
  await page.getByRole('heading', { name: 'Side project' }).waitFor();
  assert.equal(await page.getByRole('link', { name: '# general' }).count(), 0, "the other org's rooms are not listed");
  await page.getByLabel('Organization').selectOption({ label: 'Acme' });
  await page.getByRole('link', { name: '# general' }).waitFor();
  await context.close();
});

test('edits and deletes reach the other person live; API errors are shown as said', async () => {
  const adaContext = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const bobContext = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const ada = await signedInPage(adaContext, server, 'ada@example.com', PASSWORD);
  const bob = await signedInPage(bobContext, server, 'bob@example.com', PASSWORD);
  const roomUrl = `${server.url}/#/org/${setup.org.id}/room/${setup.room.id}`;
  await ada.goto(roomUrl);
  await bob.goto(roomUrl);
  const box = ada.getByLabel('Message # general');
  await box.fill('A message with a tpyo');
  await box.press('Enter');
  await bob.getByText('A message with a tpyo').waitFor();

  const mine = ada.locator('ol.messages:not(.pending) .msg', { hasText: 'A message with a tpyo' });
  await mine.hover();
  await mine.getByRole('button', { name: 'Edit' }).click();
  const editor = ada.getByLabel('Edit message');
  await editor.fill('A message with a typo fixed');
  await editor.press('Enter');
  await bob.getByText('A message with a typo fixed').waitFor();
  await bob.locator('.msg', { hasText: 'A message with a typo fixed' }).getByText('(edited)').waitFor();

  const fixed = ada.locator('ol.messages:not(.pending) .msg', { hasText: 'A message with a typo fixed' });
  await fixed.hover();
  await fixed.getByRole('button', { name: 'Delete' }).click(); // the confirm() is accepted
  await bob.getByText('This message was deleted.').waitFor();
  assert.ok(!(await messageTexts(bob)).includes('A message with a typo fixed'));

  // Over-long text: the API's own sentence reaches the person, and the text is kept to retry.
  // The box does not cut a long paste short without a word (and a maxlength counts UTF-16
  // units, where the API counts characters).
  assert.equal(await box.getAttribute('maxlength'), null);
  await box.fill('x'.repeat(4001));
  await box.press('Enter');
  const failure = ada.locator('.failed');
  await failure.waitFor();
  assert.match(await failure.textContent(), /Not sent: .*(4000|4,000|long)/i);
  await failure.getByRole('button', { name: 'Discard' }).click();
  assert.equal(await ada.locator('ol.pending .msg').count(), 0);

  // Bob opens a direct message with Ada; she sees it appear with an unread count, and his
  // presence dot.
  await bob.getByRole('button', { name: '+ Message someone' }).click();
  await bob.getByLabel('Person').selectOption({ label: 'Ada (ada@example.com) · online' });
  await bob.getByRole('button', { name: 'Open' }).click();
  const dmBox = bob.getByLabel('Message Ada');
  await dmBox.fill('A word in private');
  await dmBox.press('Enter');
  const dm = ada.getByRole('link', { name: /Bob/ });
  await dm.getByTitle('1 unread').waitFor();
  await dm.getByTitle('online').waitFor();
  await dm.click();
  await ada.getByText('A word in private').waitFor();
  await waitFor(async () => (await dm.getByTitle('1 unread').count()) === 0, 10_000, 'the DM to be read');

  // The dark theme follows the system.
  await adaContext.close();
  const dark = await chromium.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  const night = await signedInPage(dark, server, 'ada@example.com', PASSWORD);
  await night.goto(roomUrl);
  await night.getByText('This message was deleted.').waitFor();
  const background = await night.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, 'rgb(22, 24, 31)');
  await night.screenshot({ path: join(OUTPUT, 'room-dark.png') });
  assert.deepEqual(await accessibilityProblems(night), [], 'accessibility problems in the dark theme');
  await dark.close();
  await bobContext.close();
});

test('an empty room open across a server restart catches up without an error', async () => {
  const adaToken = await server.signIn('ada@example.com', PASSWORD);
  const quiet = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'quiet' }, adaToken);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${quiet.id}`);
  await page.getByText('This is the start of # quiet.').waitFor();
  // Stopped, the page notices; started again, it reconnects.
  await server.stop();
  await page.getByText('Reconnecting…').waitFor();
  await server.launch();
  await waitFor(async () => !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to reconnect');
  // A message posted after the restart arrives, and nothing went wrong on the way.
  const token = await server.signIn('bob@example.com', PASSWORD);
  await server.api('POST', `/api/rooms/${quiet.id}/messages/`, { body: 'First words in here' }, token);
  await page.getByText('First words in here').waitFor();
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('what others posted while the socket was down arrives, even after a send over REST', async () => {
  const adaToken = setup.ada;
  const bobToken = setup.bob;
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'gaps' }, adaToken);
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'Before the drop' }, bobToken);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  // The socket goes through the test, which can drop it and refuse new ones while REST works.
  const sockets = await droppableSockets(page);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Before the drop').waitFor();
  await waitFor(async () => sockets.opened() && !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to open');

  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  for (const n of [1, 2, 3]) {
    await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: `Posted while Ada was away ${n}` }, bobToken);
  }
  // Ada's own message goes over REST and shows at once, newer than the three she has not got.
  const box = page.getByLabel('Message # gaps');
  await box.fill('Sent over REST while the socket was down');
  await box.press('Enter');
  await page.locator('ol.messages:not(.pending) .msg', { hasText: 'Sent over REST while the socket was down' }).waitFor();

  sockets.allow();
  await waitFor(async () => !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to reconnect');
  for (const n of [1, 2, 3]) await page.getByText(`Posted while Ada was away ${n}`).waitFor({ timeout: 20_000 });
  const ids = await page.locator('ol.messages:not(.pending) .msg').evaluateAll((nodes) => nodes.map((n) => Number(n.dataset.id)));
  assert.equal(ids.length, 5, 'each message once');
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in id order');
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('signed out in another tab, a tab never goes on as the person who left', async () => {
  // Two tabs of one browser: they share the stored session.
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const signIn = async (page, email) => {
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Email address').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Password').press('Enter');
  };
  const first = await context.newPage();
  await first.goto(`${server.url}/#/org/${setup.org.id}`);
  await signIn(first, 'ada@example.com');
  await first.getByRole('button', { name: 'Sign out' }).waitFor();
  const second = await context.newPage();
  await second.goto(`${server.url}/#/org/${setup.org.id}`);
  await second.locator('.me', { hasText: 'Ada' }).waitFor();

  // Ada signs out in the first tab (the second follows); Bob signs in there.
  await first.getByRole('button', { name: 'Sign out' }).click();
  await second.getByRole('heading', { name: 'Sign in' }).waitFor();
  await signIn(first, 'bob@example.com');
  await first.locator('.me', { hasText: 'Bob' }).waitFor();

  // The second tab, opened again on a page, is Bob's, as the stored session is.
  await second.goto(`${server.url}/#/org/${setup.org.id}`);
  await second.locator('.me').waitFor();
  assert.match(await second.locator('.me').innerText(), /Bob/);
  await context.close();
});

test('two tabs renewing at once keep the session, even where the browser has no Web Locks', async () => {
  // A plain-http origin other than localhost has no navigator.locks; this one is made so.
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined }));
  const first = await context.newPage();
  await first.goto(`${server.url}/#/org/${setup.org.id}`);
  await first.getByLabel('Email address').fill('ada@example.com');
  await first.getByLabel('Password').fill(PASSWORD);
  await first.getByLabel('Password').press('Enter');
  await first.locator('.me', { hasText: 'Ada' }).waitFor();
  const second = await context.newPage();
  await second.goto(`${server.url}/#/org/${setup.org.id}`);
  await second.locator('.me', { hasText: 'Ada' }).waitFor();
  assert.equal(await first.evaluate(() => navigator.locks), undefined);

  // Both tabs renew their access token at the same moment, as after a laptop wakes up.
  const renew = (page) => page.evaluate(async () => {
    const app = document.querySelector('script[type=module]').src;
    const api = await import(new URL('./api.js', app).href);
    api.forgetAccessToken();
    try {
      await api.accessToken();
      return 'renewed';
    } catch (error) {
      return `failed ${error.status}`;
    }
  });
  assert.deepEqual(await Promise.all([renew(first), renew(second)]), ['renewed', 'renewed']);
  // The session lives on in both.
  for (const page of [first, second]) {
    await page.reload();
    await page.locator('.me', { hasText: 'Ada' }).waitFor();
  }
  await context.close();
});

test('an image asks the API for its address once, however often its message is redrawn', async () => {
  const adaToken = setup.ada;
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'pictures' }, adaToken);
  const presigned = await server.api('POST', '/api/uploads/presign/', { filename: 'dot.png', content_type: 'image/png', size: PNG.length }, adaToken);
  const put = await fetch(presigned.upload_url, { method: 'PUT', headers: presigned.headers, body: PNG });
  assert.ok(put.ok, `PUT ${put.status}`);
  await server.api('POST', `/api/uploads/${presigned.id}/complete/`, {}, adaToken);
  const message = await server.api('POST', `/api/rooms/${room.id}/messages/`, { file_id: presigned.id }, adaToken);

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const asked = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === `/api/uploads/${presigned.id}/`) asked.push(request.url());
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await waitFor(() => page.locator('img.preview').evaluate((img) => img.complete && img.naturalWidth === 2), 20_000, 'the image to load');
  // Each reaction redraws the message, its image included.
  for (const emoji of ['👍', '🎉', '🚀']) {
    await server.api('POST', `/api/rooms/${room.id}/messages/${message.id}/reactions/`, { emoji }, adaToken);
    await page.locator('button.chip', { hasText: emoji }).waitFor();
  }
  await waitFor(() => page.locator('img.preview').evaluate((img) => img.complete && img.naturalWidth === 2), 20_000, 'the image after the redraws');
  assert.equal(asked.length, 1, `asked ${asked.length} times`);
  await context.close();
});

test('an image whose address was refused for a moment is asked for again and shown', async () => {
  const adaToken = setup.ada;
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'busy-pictures' }, adaToken);
  const presigned = await server.api('POST', '/api/uploads/presign/', { filename: 'dot.png', content_type: 'image/png', size: PNG.length }, adaToken);
  const put = await fetch(presigned.upload_url, { method: 'PUT', headers: presigned.headers, body: PNG });
  assert.ok(put.ok, `PUT ${put.status}`);
  await server.api('POST', `/api/uploads/${presigned.id}/complete/`, {}, adaToken);
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { file_id: presigned.id }, adaToken);

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  // The first two asks for the image's address meet a busy server, then a rate limit.
  const refusals = [
    { status: 503, body: { detail: 'Try again later.', code: 'unavailable' }, headers: {} },
    { status: 429, body: { detail: 'Slow down.', code: 'rate_limited' }, headers: { 'Retry-After': '1' } },
  ];
  let asked = 0;
  await page.route((url) => url.pathname === `/api/uploads/${presigned.id}/`, (route) => {
    asked += 1;
    const refusal = refusals.shift();
    if (!refusal) return route.continue();
    return route.fulfill({ status: refusal.status, headers: refusal.headers, contentType: 'application/json', body: JSON.stringify(refusal.body) });
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await waitFor(() => page.locator('img.preview').evaluate((img) => img.complete && img.naturalWidth === 2), 30_000, 'the image after two refusals');
  assert.equal(asked, 3, `asked ${asked} times`);
  assert.equal(await page.locator('img.preview').getAttribute('alt'), 'dot.png');
  await context.close();
});

test('an edit in progress survives a newcomer\'s first message', async () => {
  const adaToken = setup.ada;
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'editing' }, adaToken);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const box = page.getByLabel('Message # editing');
  await box.fill('Draft to be edited');
  await box.press('Enter');
  const mine = page.locator('ol.messages:not(.pending) .msg', { hasText: 'Draft to be edited' });
  await mine.hover();
  await mine.getByRole('button', { name: 'Edit' }).click();
  const editor = page.getByLabel('Edit message');
  await editor.fill('Edited while someone new spoke');

  // Someone who joined the organization after the page loaded posts: the names are read again
  // and the messages drawn again, all but the one being edited.
  await server.api('POST', '/auth/register/', { email: 'cleo@example.com', password: PASSWORD, first_name: 'Cleo' });
  const cleo = await server.signIn('cleo@example.com', PASSWORD);
  const invite = await server.api('POST', `/api/orgs/${setup.org.id}/invite/`, { email: 'cleo@example.com' }, adaToken);
  await server.api('POST', '/api/orgs/accept-invite/', { token: invite.token }, cleo);
  await server.api('POST', `/api/rooms/${room.id}/join/`, undefined, cleo);
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'Hello from Cleo' }, cleo);
  await page.getByText('Hello from Cleo').waitFor();
  await page.locator('.msg', { hasText: 'Hello from Cleo' }).getByText('Cleo').first().waitFor();

  assert.equal(await editor.inputValue(), 'Edited while someone new spoke', 'the edit box is still there');
  await editor.press('Enter');
  await page.locator('ol.messages:not(.pending) .msg', { hasText: 'Edited while someone new spoke' }).waitFor();
  // And the other messages offer their actions again.
  const cleos = page.locator('ol.messages:not(.pending) .msg', { hasText: 'Hello from Cleo' });
  await cleos.hover();
  await cleos.getByRole('button', { name: 'React' }).waitFor();
  await context.close();
});

test('a link to a room made after the page loaded opens it', async () => {
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'bob@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  await page.getByRole('link', { name: '# general' }).waitFor();
  // The page is no live region as a whole (it re-announced the rebuilt room list).
  assert.equal(await page.locator('#app').getAttribute('aria-live'), null);
  const adaToken = setup.ada;
  const fresh = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'fresh' }, adaToken);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${fresh.id}`);
  await page.getByRole('heading', { name: '# fresh' }).waitFor();
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('an open thread gets the replies posted while the socket was down', async () => {
  const adaToken = setup.ada;
  const bobToken = setup.bob;
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'threads' }, adaToken);
  const root = await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'A question for the thread' }, adaToken);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const sockets = await droppableSockets(page);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}/thread/${root.id}`);
  const thread = page.getByRole('complementary', { name: 'Thread' });
  await thread.getByText('A question for the thread').waitFor();
  await waitFor(async () => sockets.opened() && !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to open');

  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'An answer while Ada was away', parent_id: root.id }, bobToken);
  sockets.allow();
  await waitFor(async () => !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to reconnect');
  await thread.getByText('An answer while Ada was away').waitFor({ timeout: 20_000 });
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a mention added to a message already read counts no mention', async () => {
  // Bob's message, read by Ada; then Bob edits it to mention her (the edit pings her socket).
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'read before' }, setup.ada);
  const old = await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'Status as of Monday' }, setup.bob);
  await server.api('POST', `/api/rooms/${room.id}/read/${old.id}/`, undefined, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const sockets = await droppableSockets(page);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  const link = page.getByRole('link', { name: /# read before/ });
  await link.waitFor();
  await waitFor(() => sockets.opened() > 0, 20_000, 'the socket');
  await server.api('PATCH', `/api/rooms/${room.id}/messages/${old.id}/`, { body: 'Status as of Monday, @ada@example.com' }, setup.bob);
  // A later message in the room shows the frames have come; the server counts no mention.
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'And today' }, setup.bob);
  await link.getByTitle('1 unread').waitFor();
  assert.equal(await link.locator('.badge.mention').count(), 0, 'a mention of a message already read');
  await context.close();
});

test('reading part of a room elsewhere leaves the rest counted unread', async () => {
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'backlog' }, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  const link = page.getByRole('link', { name: /# backlog/ });
  await link.waitFor();
  const ids = [];
  for (const n of [1, 2, 3]) {
    ids.push((await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: `Unread ${n}` }, setup.bob)).id);
  }
  await link.getByTitle('3 unread').waitFor();
  // Ada reads the first of them elsewhere (another tab scrolled up, another device).
  await server.api('POST', `/api/rooms/${room.id}/read/${ids[0]}/`, undefined, setup.ada);
  await link.getByTitle('2 unread').waitFor();
  // Reading the newest clears it.
  await server.api('POST', `/api/rooms/${room.id}/read/${ids[2]}/`, undefined, setup.ada);
  await waitFor(async () => (await link.locator('.badge').count()) === 0, 20_000, 'the count to clear');
  await context.close();
});

test('the room list keeps the keyboard focus while it is redrawn', async () => {
  const busy = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'busy' }, setup.ada);
  await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'calm' }, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  const busyLink = page.getByRole('link', { name: /# busy/ });
  const calm = page.getByRole('link', { name: /# calm/ });
  await calm.waitFor();
  await waitFor(async () => !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to open');
  // Ada is tabbing through the list; a message elsewhere redraws it under her.
  await calm.focus();
  await server.api('POST', `/api/rooms/${busy.id}/messages/`, { body: 'Something new' }, setup.bob);
  await busyLink.getByTitle('1 unread').waitFor();
  const focused = await page.evaluate(() => document.activeElement?.textContent);
  assert.match(focused ?? '', /# calm/, 'the focus stays on the link it was on');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: '# calm' }).waitFor();
  await context.close();
});

test('an old thread count announced again does not step the count back', async () => {
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'counts' }, setup.ada);
  const bob = await server.api('GET', '/auth/me/', undefined, setup.bob);
  const posted = (body, parent) => server.api('POST', `/api/rooms/${room.id}/messages/`, { body, parent_id: parent }, setup.bob);
  const root = await posted('The root of a busy thread');
  const first = await posted('The first reply', root.id);
  await posted('The second reply', root.id);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const sockets = await droppableSockets(page);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const replies = page.locator('button.replies');
  await replies.filter({ hasText: '2 replies' }).waitFor();
  await waitFor(async () => sockets.opened() && !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to open');

  // An API starting up announces again the thread as it stood after the first reply; a frame
  // after it shows that the page has handled it.
  sockets.inject({ type: 'thread.updated', room: room.id, root_id: root.id, reply_count: 1, last_reply_at: first.created_at, repliers: [bob.id] });
  sockets.inject({ type: 'typing', room: room.id, user_id: bob.id, is_typing: true });
  await page.getByText('Bob is typing…').waitFor();
  assert.match(await replies.innerText(), /2 replies/);
  await context.close();
});

test('a failed upload is retried once, from the step that failed', async () => {
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'retries' }, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const seen = { presign: 0, put: 0, complete: 0 };
  page.on('request', (request) => {
    const path = new URL(request.url()).pathname;
    if (path === '/api/uploads/presign/') seen.presign += 1;
    else if (path.startsWith('/files/') && request.method() === 'PUT') seen.put += 1;
    else if (path.endsWith('/complete/')) seen.complete += 1;
  });
  let refuse = true;
  await page.route('**/api/uploads/*/complete/', (route) => (refuse
    ? route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ detail: 'Try again later.', code: 'unavailable' }) })
    : route.fallback()));
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByLabel('Message # retries').waitFor();
  await page.locator('input[type=file]').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.getByText('Not sent: Try again later.').waitFor();

  // Retry, asked for twice in a row (an impatient double click).
  refuse = false;
  await page.getByRole('button', { name: 'Retry' }).evaluate((button) => { button.click(); button.click(); });
  await page.locator('ol.messages:not(.pending) .msg img.preview').waitFor({ timeout: 20_000 });
  await waitFor(async () => (await page.locator('.msg.pending').count()) === 0, 20_000, 'the pending copy to go');
  assert.deepEqual(seen, { presign: 1, put: 1, complete: 2 }, 'the stored file is completed again, not uploaded again');
  const stored = await server.api('GET', `/api/rooms/${room.id}/messages/`, undefined, setup.ada);
  assert.equal(stored.results.filter((m) => m.file).length, 1, 'posted once');
  await context.close();
});

test('the profile dialog renames the user and turns digest emails off and on', async () => {
  // Digest emails had no switch in the client: only the API, or a digest's unsubscribe link,
  // whose page sends people here to turn them on again.
  await server.api('POST', '/auth/register/', { email: 'ezra@example.com', password: PASSWORD, first_name: 'Ezra' });
  const ezra = await server.signIn('ezra@example.com', PASSWORD);
  const org = await server.api('POST', '/api/orgs/', { name: 'Ezra & co' }, ezra);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ezra@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('button', { name: 'Profile' }).click();
  const dialog = page.getByRole('dialog', { name: 'Profile' });
  const emails = dialog.getByLabel('Email me (ezra@example.com) about messages I miss while away');
  assert.equal(await emails.isChecked(), true, 'on by default');
  await emails.uncheck();
  await dialog.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Profile saved.').waitFor();
  let me = await server.api('GET', '/auth/me/', undefined, ezra);
  assert.equal(me.email_notifications, false);

  // Turned on again elsewhere (another tab) after this page read the profile: the dialog shows
  // the setting as it is now, and a rename leaves it alone.
  await server.api('PATCH', '/auth/me/', { email_notifications: true }, ezra);
  await page.getByRole('button', { name: 'Profile' }).click();
  assert.equal(await emails.isChecked(), true);
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  // Turned off by a digest's unsubscribe link while the page stays open: renaming the user
  // does not turn digests back on.
  await server.api('PATCH', '/auth/me/', { email_notifications: false }, ezra);
  await page.getByRole('button', { name: 'Profile' }).click();
  assert.equal(await dialog.getByLabel('First name').inputValue(), 'Ezra');
  await dialog.getByLabel('Last name').fill('  Pound ');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Profile saved.').last().waitFor();
  await page.locator('.me').getByText('Ezra Pound').waitFor();
  me = await server.api('GET', '/auth/me/', undefined, ezra);
  assert.equal(me.last_name, 'Pound');
  assert.equal(me.email_notifications, false, 'left as the link set it');
  await context.close();
});

test('changing the password keeps this browser signed in and signs every other session out', async () => {
  await server.api('POST', '/auth/register/', { email: 'dora@example.com', password: PASSWORD, first_name: 'Dora' });
  const dora = await server.signIn('dora@example.com', PASSWORD);
  const org = await server.api('POST', '/api/orgs/', { name: 'Dora & co' }, dora);
  const room = await server.api('POST', '/api/rooms/', { org: org.id, name: 'desk' }, dora);
  // Another session of hers, elsewhere.
  const elsewhere = await server.api('POST', '/auth/token/', { email: 'dora@example.com', password: PASSWORD });

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'dora@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}/room/${room.id}`);
  await page.getByRole('button', { name: 'Password' }).click();
  await page.getByLabel('Current password').fill('not my password');
  await page.getByLabel('New password (8 to 128 characters)').fill('a brand new secret');
  await page.getByRole('button', { name: 'Change' }).click();
  // Refused in the dialog, which stays open with what was typed, to correct.
  const dialog = page.getByRole('dialog', { name: 'Change password' });
  await dialog.getByText('This is not the password in use.').waitFor();
  assert.equal(await page.getByLabel('New password (8 to 128 characters)').inputValue(), 'a brand new secret');

  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Change' }).click();
  await page.getByText('Password changed.').waitFor();

  // The other session is over; the new password works, the old one not.
  const refreshed = await fetch(`${server.url}/auth/token/refresh/`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ refresh: elsewhere.refresh }),
  });
  assert.equal(refreshed.status, 401);
  await server.signIn('dora@example.com', 'a brand new secret');
  await assert.rejects(server.signIn('dora@example.com', PASSWORD));
  // This browser goes on: after a reload it is still signed in (its new refresh token works).
  await page.reload();
  await page.getByRole('link', { name: '# desk' }).waitFor();
  await context.close();
});

test('the API documentation renders under its content security policy', async () => {
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const refused = [];
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) refused.push(message.text());
  });
  const response = await page.goto(`${server.url}/api/docs/`);
  assert.match(response.headers()['content-security-policy'] ?? '', /script-src 'self'/);
  await page.getByText('ChatBoard', { exact: false }).first().waitFor({ timeout: 20_000 });
  await page.locator('.opblock').first().waitFor({ timeout: 20_000 });
  assert.deepEqual(refused, []);
  await context.close();
});

test('a room the server refuses keeps its dialog open with what was typed, and says why', async () => {
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  await page.getByRole('button', { name: '+ New room' }).click();
  const dialog = page.getByRole('dialog', { name: 'New room' });
  const name = dialog.getByLabel('Name', { exact: true });
  // Spaces pass the field's `required`; the API refuses the empty name they trim to.
  await name.fill('   ');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await dialog.getByRole('alert').filter({ hasText: /name/ }).waitFor();
  assert.equal(await name.inputValue(), '   ');
  await name.fill('kept open');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('heading', { name: '# kept open' }).waitFor();
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('closing Browse rooms gives the focus back to its button, though the sidebar was redrawn', async () => {
  const left = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'to browse' }, setup.ada);
  await server.api('POST', `/api/rooms/${left.id}/leave/`, undefined, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  const general = page.getByRole('link', { name: /# general/ });
  await general.waitFor();
  await page.getByRole('button', { name: 'Browse rooms' }).click();
  const dialog = page.getByRole('dialog', { name: 'Join a room' });
  await dialog.getByRole('button', { name: 'Join # to browse' }).waitFor();
  // A message elsewhere redraws the sidebar, its buttons included, behind the dialog.
  await server.api('POST', `/api/rooms/${setup.room.id}/messages/`, { body: 'Redraw the sidebar' }, setup.bob);
  await general.getByTitle(/unread/).waitFor({ timeout: 20_000 });
  await page.keyboard.press('Escape');
  await waitFor(() => page.evaluate(() => document.activeElement?.textContent === 'Browse rooms'), 5_000, 'the focus on Browse rooms');
  await context.close();
});

test('removed from an organization, the page leaves it and says so', async () => {
  const org = await server.api('POST', '/api/orgs/', { name: 'Short stay' }, setup.bob);
  const invite = await server.api('POST', `/api/orgs/${org.id}/invite/`, { email: 'ada@example.com' }, setup.bob);
  await server.api('POST', '/api/orgs/accept-invite/', { token: invite.token }, setup.ada);
  // PUBLIC: every member of the organization gets a seat.
  await server.api('POST', '/api/rooms/', { org: org.id, name: 'brief' }, setup.bob);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const sockets = await droppableSockets(page);
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('link', { name: /# brief/ }).waitFor();
  await waitFor(() => sockets.opened() > 0, 20_000, 'the socket');
  const members = await server.api('GET', `/api/orgs/${org.id}/members/`, undefined, setup.bob);
  const ada = members.find((m) => m.email === 'ada@example.com');
  await server.api('DELETE', `/api/orgs/${org.id}/members/${ada.user_id}/`, undefined, setup.bob);
  await page.getByText('Short stay is no longer open to you.').waitFor({ timeout: 20_000 });
  await waitFor(() => !page.url().includes(`/org/${org.id}`), 20_000, 'the page to leave the organization');
  await context.close();
});

test('an organization deleted while a member views it leaves the page', async () => {
  const org = await server.api('POST', '/api/orgs/', { name: 'Gone soon' }, setup.bob);
  const invite = await server.api('POST', `/api/orgs/${org.id}/invite/`, { email: 'ada@example.com' }, setup.bob);
  await server.api('POST', '/api/orgs/accept-invite/', { token: invite.token }, setup.ada);
  await server.api('POST', '/api/rooms/', { org: org.id, name: 'last words' }, setup.bob);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const sockets = await droppableSockets(page);
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('link', { name: /# last words/ }).waitFor();
  await waitFor(() => sockets.opened() > 0, 20_000, 'the socket');
  // Its rooms go as deleted ones (`left`, no_room): the organization stayed in the switcher,
  // and every action in it answered 404, until a reload.
  await server.api('DELETE', `/api/orgs/${org.id}/`, undefined, setup.bob);
  await waitFor(() => !page.url().includes(`/org/${org.id}`), 20_000, 'the page to leave the organization');
  await context.close();
});

test('a zip the browser reports as application/x-zip-compressed is sent as a zip', async () => {
  // Windows names a zip so (its registry's type), and the API takes `application/zip` only.
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'archives' }, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByLabel('Message # archives').waitFor();
  const zip = Buffer.from('PK\u0003\u0004 not much of an archive');
  await page.locator('input[type=file]').setInputFiles({ name: 'q3.zip', mimeType: 'application/x-zip-compressed', buffer: zip });
  await waitFor(async () => (await server.api('GET', `/api/rooms/${room.id}/messages/`, undefined, setup.ada))
    .results.some((m) => m.file?.content_type === 'application/zip'), 20_000, 'the zip to be posted');
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('discarding a message whose upload failed gives the upload up', async () => {
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'given up' }, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const cancelled = [];
  page.on('request', (request) => {
    if (request.method() === 'DELETE' && new URL(request.url()).pathname.startsWith('/api/uploads/')) cancelled.push(request.url());
  });
  await page.route('**/api/uploads/*/complete/', (route) => route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ detail: 'Try again later.', code: 'unavailable' }) }));
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByLabel('Message # given up').waitFor();
  await page.locator('input[type=file]').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.getByText('Not sent: Try again later.').waitFor();
  await page.getByRole('button', { name: 'Discard' }).click();
  await waitFor(() => cancelled.length === 1, 20_000, 'the upload to be given up');
  await context.close();
});

test('discarding a message whose file the API refuses gives its text back to the composer', async () => {
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'refused file' }, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const box = page.getByLabel('Message # refused file');
  await box.fill('Figures attached');
  // A type no upload may have (a browser runs scripts in it).
  await page.locator('input[type=file]').setInputFiles({ name: 'page.html', mimeType: 'text/html', buffer: Buffer.from('<p>hi</p>') });
  await page.locator('.msg.pending .failed').waitFor();
  assert.equal(await box.inputValue(), '');
  await page.getByRole('button', { name: 'Discard' }).click();
  assert.equal(await box.inputValue(), 'Figures attached');
  await context.close();
});
