// The room view when things go wrong or get busy: a burst of messages read as it comes (the
// reads must not trip the gateway's frame limit), a catch-up that fails while live messages
// keep coming, a message still on its way when its room is left, a socket that opens and is
// never greeted, Enter pressed to pick a character of an input method while editing, a page
// read before a deletion that lands after it, replies quoting a thread's first message that
// changes, unread counts read before a room was read and answered after, and unread counts read
// before a message came and answered after.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { droppableSockets, PASSWORD, shownErrors, signedInPage, startTeam, stopTeam, waitFor } from './harness.mjs';

let server;
let chromium;
let setup;

before(async () => ({ server, chromium, setup } = await startTeam()));
after(() => stopTeam({ server, chromium }));

const newRoom = (name) => server.api('POST', '/api/rooms/', { org: setup.org.id, name }, setup.ada);
const post = (room, body, token = setup.bob) => server.api('POST', `/api/rooms/${room.id}/messages/`, { body }, token);
const roomUrl = (room) => `${server.url}/#/org/${setup.org.id}/room/${room.id}`;

/** Posts `count` messages `${prefix} 1`… into `room` from eight senders at once; their ids. */
async function burst(room, prefix, count) {
  const ids = [];
  let next = 0;
  const sender = async () => {
    while (next < count) {
      next += 1;
      ids.push((await post(room, `${prefix} ${next}`)).id);
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));
  return ids.sort((a, b) => a - b);
}

/** Ada's page, its socket under the test's control, open on `room` and greeted. */
async function adaIn(room) {
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const sockets = await droppableSockets(page);
  await page.goto(roomUrl(room));
  await page.getByRole('heading', { name: `# ${room.name}` }).waitFor();
  await waitFor(() => sockets.received().some((frame) => frame.type === 'connection'), 30_000, 'the greeting');
  return { context, page, sockets };
}

const shownIds = (page) => page.locator('ol.messages:not(.pending) .msg').evaluateAll((nodes) => nodes.map((n) => Number(n.dataset.id)));

test('a burst of messages read as they come keeps the socket open', async () => {
  const room = await newRoom('busy');
  const { context, page, sockets } = await adaIn(room);
  // More reads than the gateway's 20 frames a second (and its burst of 20) would allow, had
  // each message been read in a frame of its own: it closed the socket (4008) mid-burst.
  const ids = await burst(room, 'Busy', 200);
  await waitFor(async () => (await shownIds(page)).at(-1) === ids.at(-1), 60_000, 'the burst shown');
  // The newest is told too, once its turn comes.
  await waitFor(() => sockets.sent().some((f) => f.type === 'read' && f.msg_id === ids.at(-1)), 20_000, 'the last read sent');
  const reads = sockets.sent().filter((f) => f.type === 'read').length;
  assert.equal(sockets.opened(), 1, 'the socket was closed and opened again');
  assert.ok(reads < 60, `${reads} read frames for ${ids.length} messages`);
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a catch-up that fails while live messages come leaves no gap once it is tried again', async () => {
  const room = await newRoom('gap');
  await post(room, 'Before the drop');
  const { context, page, sockets } = await adaIn(room);
  await page.getByText('Before the drop').waitFor();
  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  const missed = await burst(room, 'Missed', 120);
  // The catch-up's first page fails once (a busy moment: 503, or the client's rate limit);
  // its retry waits until a live message has been shown.
  let refused = false;
  let liveShown;
  const liveSeen = new Promise((resolve) => { liveShown = resolve; });
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('after'), async (route) => {
    if (refused) {
      await liveSeen;
      return route.continue();
    }
    refused = true;
    return route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ code: 'unavailable', detail: 'Busy, try again.' }) });
  });
  sockets.allow();
  await waitFor(() => refused, 30_000, 'the catch-up refused');
  await post(room, 'Live after the failure');
  await page.getByText('Live after the failure').waitFor({ timeout: 20_000 });
  liveShown();
  // The retry read from where the view stood, not from the live message: nothing missing.
  await waitFor(async () => {
    const shown = new Set(await shownIds(page));
    return missed.every((id) => shown.has(id));
  }, 30_000, 'every missed message shown');
  const shown = await shownIds(page);
  assert.deepEqual(shown, [...shown].sort((a, b) => a - b), 'in order');
  assert.equal(new Set(shown).size, shown.length, 'none twice');
  await context.close();
});

test('a message typed while the room\'s first page failed is sent once the page loads after a reconnect', async () => {
  const start = await newRoom('offline start');
  const room = await newRoom('offline typing');
  await post(room, 'Already there');
  const { context, page, sockets } = await adaIn(start);
  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  // The network is gone for the room: its first page and the post fail as a dead link does.
  let offline = true;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/`, (route) => (offline ? route.abort('internetdisconnected') : route.continue()));
  await page.goto(roomUrl(room));
  await page.getByRole('heading', { name: `# ${room.name}` }).waitFor();
  const box = page.getByLabel(`Message # ${room.name}`);
  await box.fill('Typed while offline');
  await box.press('Enter');
  await page.locator('ol.pending .msg', { hasText: 'Typed while offline' }).waitFor({ timeout: 20_000 });
  await waitFor(async () => (await page.locator('ol.pending .msg', { hasText: 'Typed while offline' }).textContent()).includes('ot sent'), 20_000, 'the post failed');
  offline = false;
  sockets.allow();
  // Back: the first page loads, and what was typed meanwhile goes.
  await page.getByText('Already there').waitFor({ timeout: 30_000 });
  await page.locator('ol.messages:not(.pending) .msg', { hasText: 'Typed while offline' }).waitFor({ timeout: 30_000 });
  const stored = await server.api('GET', `/api/rooms/${room.id}/messages/`, undefined, setup.ada);
  assert.deepEqual(stored.results.map((m) => m.body).filter((b) => b === 'Typed while offline'), ['Typed while offline']);
  await context.close();
});

test('a message still on its way when its room is left says so if it then fails', async () => {
  const room = await newRoom('left behind');
  const other = await newRoom('elsewhere');
  const { context, page } = await adaIn(room);
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let arrived = false;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/`, async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    arrived = true;
    await held;
    return route.fulfill({ status: 500, contentType: 'application/json', body: JSON.stringify({ code: 'internal', detail: 'Something broke.' }) });
  });
  const box = page.getByLabel(`Message # ${room.name}`);
  await box.fill('Sent as I left');
  await box.press('Enter');
  await waitFor(() => arrived, 20_000, 'the post on its way');
  await page.goto(roomUrl(other));
  await page.getByRole('heading', { name: `# ${other.name}` }).waitFor();
  release();
  // The failure had nowhere to show (the room's list was gone) and went unsaid.
  await waitFor(async () => (await shownErrors(page)).some((e) => e.includes('Sent as I left') && e.includes('was not sent')), 20_000, 'the failure told');
  await context.close();
});

test('a socket that opens and is never greeted is given up and opened again', async () => {
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  let attempts = 0;
  let greeted = false;
  // The first socket is answered by nobody (a gateway hung behind the ingress); the next ones
  // reach the server.
  await page.routeWebSocket(/\/ws\//, (ws) => {
    attempts += 1;
    if (attempts === 1) return;
    const upstream = ws.connectToServer();
    ws.onMessage((frame) => upstream.send(frame));
    upstream.onMessage((frame) => {
      if (String(frame).includes('"connection"')) greeted = true;
      ws.send(frame);
    });
  });
  const started = Date.now();
  await page.goto(roomUrl(setup.room));
  // Given up after 15 s, not after a ping's 25 s and its pong's 10 s.
  await waitFor(() => greeted, 60_000, 'a second socket greeted');
  const took = Date.now() - started;
  assert.ok(took < 32_000, `greeted after ${took} ms`);
  await context.close();
});

test('Enter that picks an input method candidate while editing does not save the edit', async () => {
  const room = await newRoom('ime');
  const mine = await post(room, 'Before the edit', setup.ada);
  const { context, page } = await adaIn(room);
  const message = page.locator(`#m-${mine.id}`);
  await message.hover();
  await message.getByRole('button', { name: 'Edit' }).click();
  const editor = page.getByLabel('Edit message');
  await editor.fill('Half typed');
  await editor.evaluate((el) => {
    for (const key of ['Enter', 'Escape']) {
      el.dispatchEvent(new KeyboardEvent('keydown', { key, isComposing: true, bubbles: true, cancelable: true }));
    }
  });
  assert.equal(await editor.count(), 1, 'the edit box is still open');
  await editor.fill('Typed in full');
  await editor.press('Enter');
  await message.getByText('Typed in full').waitFor();
  const stored = await server.api('GET', `/api/rooms/${room.id}/messages/?limit=10`, undefined, setup.ada);
  assert.deepEqual(stored.results.map((m) => m.body), ['Typed in full']);
  await context.close();
});

test('a page read before a deletion and answered after it does not bring the message back', async () => {
  const room = await newRoom('stale page');
  await post(room, 'Stays');
  const doomed = await post(room, 'Deleted while the page was on its way');
  const { context, page, sockets } = await adaIn(room);
  await page.getByText('Deleted while the page was on its way').waitFor();
  // The page read again after a reconnect (edits made meanwhile) is read now, answered later.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let fetched = false;
  let served = false;
  // Only the reconnect's: the first connection's greeting may come after the first page, and
  // read that page again too.
  let armed = false;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('before'), async (route) => {
    if (!armed) return route.continue();
    const response = await route.fetch();
    fetched = true;
    await held;
    await route.fulfill({ response });
    served = true;
  });
  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  armed = true;
  sockets.allow();
  await waitFor(() => fetched, 30_000, 'the page read');
  await waitFor(() => sockets.received().filter((f) => f.type === 'connection').length >= 2, 30_000, 'the new greeting');
  await server.api('DELETE', `/api/rooms/${room.id}/messages/${doomed.id}/`, undefined, setup.bob);
  await page.locator(`#m-${doomed.id}`).getByText('This message was deleted.').waitFor({ timeout: 20_000 });
  release();
  await waitFor(() => served, 20_000, 'the page answered');
  await post(room, 'After the page');
  await page.getByText('After the page').waitFor({ timeout: 20_000 });
  assert.equal(await page.getByText('Deleted while the page was on its way').count(), 0);
  await page.locator(`#m-${doomed.id}`).getByText('This message was deleted.').waitFor();
  await context.close();
});

test('replies quote their thread\'s first message as it stands', async () => {
  const room = await newRoom('quotes');
  const root = await post(room, 'Root words');
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'A reply', parent_id: root.id }, setup.bob);
  const { context, page } = await adaIn(room);
  const quote = page.locator('.msg', { hasText: 'A reply' }).locator('.in-thread');
  await waitFor(async () => (await quote.textContent())?.includes('Root words'), 20_000, 'the quote');
  await server.api('PATCH', `/api/rooms/${room.id}/messages/${root.id}/`, { body: 'Changed root' }, setup.bob);
  await waitFor(async () => (await quote.textContent())?.includes('Changed root'), 20_000, 'the edited quote');
  await server.api('DELETE', `/api/rooms/${room.id}/messages/${root.id}/`, undefined, setup.bob);
  await waitFor(async () => (await quote.textContent())?.trim() === '↳ replied in a thread', 20_000, 'the quote gone');
  await context.close();
});

/** Holds the unread counts a reconnect of `sockets` reads again: read from the server at once,
 * answered when `answer()` is called, with a count of `marked` for room `marker` that no frame
 * brings, to see the answer applied (`applied()`). */
async function heldCounts(page, sockets, marker, marked) {
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let fetched = false;
  let served = false;
  await page.route('**/auth/me/unread-counts/', async (route) => {
    const response = await route.fetch();
    const counts = await response.json();
    counts.unread_counts.push({ room_id: marker.id, unread_count: marked, mentions: 0, last_read_msg_id: 0 });
    fetched = true;
    await held;
    await route.fulfill({ response, json: counts });
    served = true;
  });
  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  sockets.allow();
  await waitFor(() => fetched, 30_000, 'the counts read');
  return {
    answer: release,
    applied: async () => {
      await waitFor(() => served, 20_000, 'the counts answered');
      const badge = page.locator(`a[href$="/room/${marker.id}"] .badge`);
      await waitFor(async () => (await badge.count()) === 1 && (await badge.textContent()) === String(marked), 20_000, 'the answer applied');
    },
  };
}

test('unread counts read before a room is read and answered after leave its badge off', async () => {
  const here = await newRoom('staying');
  const read = await newRoom('read meanwhile');
  const next = await newRoom('next');
  const marker = await newRoom('marker');
  for (let i = 0; i < 3; i += 1) await post(read, `Unread ${i}`);
  const { context, page, sockets } = await adaIn(here);
  const badge = page.locator(`a[href$="/room/${read.id}"] .badge`);
  await waitFor(async () => (await badge.textContent()) === '3', 20_000, 'three unread');
  // The counts a reconnect reads again are read now and answered once the room was read.
  const counts = await heldCounts(page, sockets, marker, 7);
  await page.locator(`a[href$="/room/${read.id}"]`).click();
  await page.getByText('Unread 2').waitFor();
  await waitFor(() => sockets.sent().some((f) => f.type === 'read' && f.room === read.id), 20_000, 'the read told');
  await page.locator(`a[href$="/room/${next.id}"]`).click();
  await page.getByRole('heading', { name: `# ${next.name}` }).waitFor();
  counts.answer();
  await counts.applied();
  assert.equal(await badge.count(), 0, 'the room read shows unread messages again');
  await context.close();
});

test('a message counted while the counts are read is still counted once they are in', async () => {
  const here = await newRoom('open one');
  const other = await newRoom('elsewhere');
  const marker = await newRoom('marker two');
  const { context, page, sockets } = await adaIn(here);
  // The counts a reconnect reads again are read now, and answered after a message came.
  const counts = await heldCounts(page, sockets, marker, 5);
  const { id } = await post(other, 'While the counts were read');
  await waitFor(() => sockets.received().some((f) => f.type === 'message' && f.id === id), 20_000, 'the frame');
  counts.answer();
  await counts.applied();
  const badge = page.locator(`a[href$="/room/${other.id}"] .badge`);
  assert.equal(await badge.count() && await badge.textContent(), '1', 'the message counted from its frame');
  // Counted once: the next one makes two.
  await post(other, 'After the counts');
  await waitFor(async () => (await badge.textContent()) === '2', 20_000, 'two unread');
  await context.close();
});
