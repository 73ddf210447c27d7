// Connections that fail without saying so: a socket that stops answering, a request the server
// never answers, and an upload that stalls; and a socket that outlives its access token. The page's clock is Playwright's, moved forward by
// the tests, so the client's waits (a ping every 25 s, 10 s for its answer, 30 s for a request,
// 60 s without upload progress) take no time.
import { test, before, after } from 'node:test';
import { droppableSockets, PASSWORD, PNG, Server, shownErrors, signedInPage, startTeam, stopTeam, team, waitFor } from './harness.mjs';

let server;
let chromium;
let setup;

before(async () => ({ server, chromium, setup } = await startTeam()));
after(() => stopTeam({ server, chromium }));

/** Ada's page on a new room of the team, with its clock under the test's control. */
async function adaIn(name) {
  const room = await server.api('POST', '/api/rooms/', { org: setup.org.id, name }, setup.ada);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.clock.install();
  return { room, context, page };
}

test('a socket that stops answering is given up and opened again', async () => {
  const { room, context, page } = await adaIn('silence');
  const sockets = await droppableSockets(page);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await waitFor(async () => sockets.opened() === 1 && !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to open');

  // The connection goes dead: nothing passes either way, and nothing closes it.
  sockets.silence();
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'Posted into the silence' }, setup.bob);
  // The next ping goes unanswered.
  await page.clock.fastForward(25_000);
  await page.clock.fastForward(10_000);
  await waitFor(async () => sockets.opened() === 2, 30_000, 'a new connection');
  await page.getByText('Posted into the silence').waitFor({ timeout: 60_000 });
  await waitFor(async () => !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to be back');
  await context.close();
});

test('a message the server never answers fails in time and can be sent again', async () => {
  const { room, context, page } = await adaIn('unanswered');
  let hold = true;
  await page.route(`**/api/rooms/${room.id}/messages/`, (route) => {
    if (hold && route.request().method() === 'POST') return; // never answered
    return route.fallback();
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const box = page.getByLabel('Message # unanswered');
  await box.fill('Into a server that says nothing');
  await box.press('Enter');
  await page.getByText('Sending…').waitFor();
  await page.clock.fastForward(30_000);
  await page.getByText('Not sent: The server did not answer in time').waitFor({ timeout: 20_000 });

  hold = false;
  await page.getByRole('button', { name: 'Retry' }).click();
  await page.locator('ol.messages:not(.pending) .msg', { hasText: 'Into a server that says nothing' }).waitFor({ timeout: 20_000 });
  await waitFor(async () => (await page.locator('.msg.pending').count()) === 0, 20_000, 'the pending copy to go');
  const stored = await server.api('GET', `/api/rooms/${room.id}/messages/`, undefined, setup.ada);
  const texts = (stored.results ?? stored).map((m) => m.body);
  if (texts.filter((t) => t === 'Into a server that says nothing').length !== 1) throw new Error(`stored: ${JSON.stringify(texts)}`);
  const errors = (await shownErrors(page)).filter((e) => !String(e).includes('did not answer'));
  if (errors.length) throw new Error(`errors shown: ${errors}`);
  await context.close();
});

test('an upload that stalls fails in time and can be sent again', async () => {
  const { room, context, page } = await adaIn('stalled');
  let hold = true;
  let held = 0;
  await page.route('**/files/**', (route) => {
    if (hold && route.request().method() === 'PUT') {
      held += 1;
      return; // never answered
    }
    return route.fallback();
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByLabel('Message # stalled').waitFor();
  await page.locator('input[type=file]').setInputFiles({ name: 'stalled.png', mimeType: 'image/png', buffer: PNG });
  // Once the file is on its way (not before: the presign's own deadline would fire instead).
  await waitFor(() => held === 1, 20_000, 'the upload to start');
  await page.clock.fastForward(61_000);
  await page.getByText('Not sent: The upload stalled').waitFor({ timeout: 20_000 });
  // The stalled upload is given up on the server: it no longer holds the user's upload quota
  // (for a day, and the retry asks for another).
  const statuses = async () => (await server.api('GET', '/api/uploads/my-uploads/', undefined, setup.ada))
    .filter((u) => u.filename === 'stalled.png').map((u) => u.status);
  await waitFor(async () => (await statuses()).join() === 'expired', 20_000, 'the stalled upload to be given up');

  hold = false;
  await page.getByRole('button', { name: 'Retry' }).click();
  await page.locator('ol.messages:not(.pending) .msg img.preview').waitFor({ timeout: 20_000 });
  await context.close();
});

test('the socket outlives its access token: the client hands it a renewed one', async () => {
  // Tokens of 10 s and the gateway's checks every second, on a server of this test's own; the
  // page's clock is the real one.
  const short = await Server.start({
    CHATBOARD_RATE_LIMIT_PER_IP: '0',
    CHATBOARD_RATE_LIMIT_PER_USER: '0',
    CHATBOARD_ACCESS_TOKEN_TTL: '10',
    CHATBOARD_WS_PING_INTERVAL: '1',
  });
  try {
    const crew = await team(short, PASSWORD);
    const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await signedInPage(context, short, 'ada@example.com', PASSWORD);
    const sockets = await droppableSockets(page);
    await page.goto(`${short.url}/#/org/${crew.org.id}/room/${crew.room.id}`);
    await waitFor(async () => sockets.opened() === 1 && !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to open');
    const openedAt = Date.now();
    // Past the first token's expiry and several of the gateway's checks after it.
    await waitFor(
      async () => Date.now() > openedAt + 14_000 && sockets.received().some((frame) => frame.type === 'authenticated'),
      60_000,
      'a renewed token taken, and the first one expired',
    );
    if (sockets.opened() !== 1) throw new Error(`the socket was opened ${sockets.opened()} times`);
    const bob = await short.signIn('bob@example.com', PASSWORD);
    await short.api('POST', `/api/rooms/${crew.room.id}/messages/`, { body: 'After the first token' }, bob);
    await page.getByText('After the first token').waitFor({ timeout: 20_000 });
    if (sockets.opened() !== 1) throw new Error(`the socket was opened ${sockets.opened()} times`);
    await context.close();
  } finally {
    await short.close();
  }
});
