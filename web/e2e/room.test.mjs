// The room view across a dropped socket and quick navigation: what changed meanwhile (also far
// below the newest page), messages that failed while offline (sent again, or not once
// discarded), unread counts of a room left scrolled up, a thread link overtaken by another room,
// the focus after a reaction, and an image that loads at the bottom; a first connection that
// fails; a large room without its member list; a room open at the bottom all day (a message
// clicked in the morning included), or a little above it, or far behind after a long
// disconnect; reaction frames that arrive out of order; @-completions answered out of order, or
// asked for just after the composer got the focus back;
// paging back with the keyboard; a file's slow link, or one past its retention; reading a busy
// room from above its bottom; a deletion in a room not open; paging back that failed; a
// reconnect while messages wait below a scrolled-up view, and going down during its catch-up.

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
const bodies = async (room) => (await server.api('GET', `/api/rooms/${room.id}/messages/?limit=100`, undefined, setup.ada)).results.map((m) => m.body);

/** Ada's page, its socket under the test's control. */
async function ada() {
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  const sockets = await droppableSockets(page);
  return { context, page, sockets };
}

/** Posts "`prefix` 1" to "`prefix` `count`" from eight senders at once; answers the newest id. */
async function postMany(room, count, prefix) {
  let next = 0;
  let newest = 0;
  const sender = async () => {
    while (next < count) {
      next += 1;
      const { id } = await post(room, `${prefix} ${next}`);
      newest = Math.max(newest, id);
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));
  return newest;
}

/** The ids of the messages the page's room view shows, oldest first. */
const shownIds = (page) => page.locator('ol.messages:not(.pending) .msg').evaluateAll((nodes) => nodes.map((n) => Number(n.dataset.id)));

/** A room of 60 messages ("`prefix` 1" to "`prefix` 60") open in Ada's page, scrolled 200
 * pixels up from its bottom; `reading` is "`prefix` 55", in view. */
async function scrolledUp(name, prefix) {
  const room = await newRoom(name);
  for (let i = 1; i <= 60; i += 1) await post(room, `${prefix} ${i}`);
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText(`${prefix} 60`, { exact: true }).waitFor();
  await connected(page, sockets);
  await page.locator('.scroller').first().evaluate((el) => { el.scrollTop = el.scrollHeight - el.clientHeight - 200; });
  const reading = page.getByText(`${prefix} 55`, { exact: true });
  await reading.waitFor();
  return { room, context, page, sockets, reading };
}

/** As `scrolledUp`, then 1,200 more messages: the view fills to what it may hold and the
 * newest (`newest`, a frame the page has had) wait below it, behind "New messages". */
async function fullViewBehind(name, prefix) {
  const view = await scrolledUp(name, `${prefix} early`);
  const newest = await postMany(view.room, 1200, prefix);
  await view.page.getByRole('button', { name: 'New messages ↓' }).waitFor();
  await waitFor(async () => view.sockets.received().some((frame) => frame.type === 'message' && frame.id === newest), 60_000, 'the last frame');
  return { ...view, newest };
}

async function connected(page, sockets) {
  await waitFor(async () => sockets.opened() > 0 && !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to be open');
}

test('edits, deletions and reactions made while the socket was down are shown once it is back', async () => {
  const room = await newRoom('changes');
  const keep = await post(room, 'Keep me');
  const edit = await post(room, 'Edit me');
  const gone = await post(room, 'Delete me');
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Delete me').waitFor();
  await connected(page, sockets);

  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  await server.api('PATCH', `/api/rooms/${room.id}/messages/${edit.id}/`, { body: 'Edited while Ada was away' }, setup.bob);
  await server.api('DELETE', `/api/rooms/${room.id}/messages/${gone.id}/`, undefined, setup.bob);
  await server.api('POST', `/api/rooms/${room.id}/messages/${keep.id}/reactions/`, { emoji: '👍' }, setup.bob);
  sockets.allow();
  await connected(page, sockets);
  await page.getByText('Edited while Ada was away').waitFor({ timeout: 20_000 });
  await page.getByText('This message was deleted.').waitFor({ timeout: 20_000 });
  await page.getByLabel('👍 1 reaction').waitFor({ timeout: 20_000 });
  assert.equal(await page.getByText('Delete me').count(), 0);
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a deletion and an edit made while the socket was down reach messages held beyond the newest page', async () => {
  const room = await newRoom('long view');
  const early = [];
  for (let i = 1; i <= 30; i += 1) early.push(await post(room, `Early ${i}`));
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Early 30', { exact: true }).waitFor();
  await connected(page, sockets);
  // Forty more while the room is open: the view holds seventy, the first ones far below the
  // newest fifty.
  for (let i = 1; i <= 40; i += 1) await post(room, `Later ${i}`);
  await page.getByText('Later 40', { exact: true }).waitFor();

  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  await server.api('DELETE', `/api/rooms/${room.id}/messages/${early[1].id}/`, undefined, setup.bob);
  await server.api('PATCH', `/api/rooms/${room.id}/messages/${early[2].id}/`, { body: 'Early 3, edited while Ada was away' }, setup.bob);
  sockets.allow();
  await connected(page, sockets);
  await page.getByText('Early 3, edited while Ada was away').waitFor({ timeout: 20_000 });
  await waitFor(async () => (await page.getByText('Early 2', { exact: true }).count()) === 0, 20_000, 'the deleted message to go');
  await page.getByText('This message was deleted.').waitFor();
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a message that failed offline in an empty room goes once the connection is back', async () => {
  const room = await newRoom('empty');
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('This is the start of # empty.').waitFor();
  await connected(page, sockets);

  // The connection goes: the socket, and the post with it.
  await sockets.drop();
  await page.route(`**/api/rooms/${room.id}/messages/`, (route) => (route.request().method() === 'POST' ? route.abort() : route.fallback()));
  const box = page.getByLabel('Message # empty');
  await box.fill('Written while offline');
  await box.press('Enter');
  await page.getByText('Not sent:').waitFor();
  await page.unroute(`**/api/rooms/${room.id}/messages/`);
  sockets.allow();
  await page.locator('ol.messages:not(.pending) .msg', { hasText: 'Written while offline' }).waitFor({ timeout: 20_000 });
  await waitFor(async () => (await page.locator('.msg.pending').count()) === 0, 20_000, 'the pending copy to go');
  assert.deepEqual(await bodies(room), ['Written while offline']);
  await context.close();
});

test('a failed message discarded by leaving the room is not sent when the connection comes back', async () => {
  const room = await newRoom('discard');
  const elsewhere = await newRoom('elsewhere');
  await post(room, 'Something to catch up after');
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Something to catch up after').waitFor();
  await connected(page, sockets);

  await sockets.drop();
  const posts = `**/api/rooms/${room.id}/messages/`;
  await page.route(posts, (route) => (route.request().method() === 'POST' ? route.abort() : route.fallback()));
  const box = page.getByLabel('Message # discard');
  await box.fill('Never send me');
  await box.press('Enter');
  await page.getByText('Not sent:').waitFor();
  // The catch-up after the reconnect is held while Ada leaves the room.
  let held = null;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('after'), (route) => { held = route; });
  sockets.allow();
  await waitFor(() => held !== null, 30_000, 'the catch-up to start');
  await page.getByRole('link', { name: /# elsewhere/ }).click();
  await page.getByRole('heading', { name: '# elsewhere' }).waitFor();
  assert.deepEqual(await shownErrors(page), ['1 unsent message in # discard discarded.']);
  await page.unroute(posts);
  // The catch-up ends (the room's members are read last, just before failed messages would be
  // sent again): nothing is sent.
  const membersRead = page.waitForResponse((response) => response.url().includes(`/api/rooms/${room.id}/members/`));
  await held.fallback();
  await membersRead;
  await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 500)));
  assert.deepEqual(await bodies(room), ['Something to catch up after']);
  assert.equal(elsewhere.name, 'elsewhere');
  await context.close();
});

test('messages that came while the room was scrolled up are counted once it is left', async () => {
  const room = await newRoom('scrolled');
  for (let n = 1; n <= 40; n += 1) await post(room, `Backlog ${n}`);
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Backlog 40').waitFor();
  await connected(page, sockets);
  await page.locator('.scroller').evaluate((scroller) => { scroller.scrollTop = 0; });
  await post(room, 'Came while scrolled up 1');
  await post(room, 'Came while scrolled up 2');
  await page.getByRole('button', { name: 'New messages ↓' }).waitFor();
  await page.getByRole('link', { name: /# general/ }).click();
  await page.getByRole('heading', { name: '# general' }).waitFor();
  await page.getByRole('link', { name: /# scrolled/ }).getByTitle('2 unread').waitFor({ timeout: 20_000 });
  await context.close();
});

test('a room whose first page failed marks nothing read and reads it again', async () => {
  const room = await newRoom('busy start');
  for (let n = 1; n <= 3; n += 1) await post(room, `Unread before ${n}`);
  const { context, page, sockets } = await ada();
  let hold = true;
  const firstPage = (url) => url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('limit')
    && !url.searchParams.has('before') && !url.searchParams.has('after');
  await page.route(firstPage, (route) => (hold && route.request().method() === 'GET'
    ? route.fulfill({ status: 503, contentType: 'application/json', body: '{"detail":"Busy.","code":"server_busy"}' })
    : route.fallback()));
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await connected(page, sockets);
  // The greeting comes once the gateway follows the rooms: a message posted before it would
  // reach the page only through the page this test refuses.
  await waitFor(async () => sockets.received().some((f) => f.type === 'connection'), 20_000, 'the greeting');
  // And the room's view is up: the socket starts with the session, before the organization's
  // rooms are read and the view made, and a frame that came before the view would reach it
  // only through the page refused here.
  await page.getByLabel('Message # busy start').waitFor();
  await post(room, 'Live while the history failed');
  await page.getByText('Live while the history failed').waitFor();
  // A frame sent after any read the live message caused: typing.
  await page.getByLabel('Message # busy start').fill('x');
  await waitFor(async () => sockets.sent().some((f) => f.type === 'typing'), 20_000, 'a typing frame');
  const frames = sockets.sent();
  const typing = frames.findIndex((f) => f.type === 'typing');
  assert.deepEqual(frames.slice(0, typing).filter((f) => f.type === 'read'), [], 'no read before the history was shown');
  // Read again, later: the history comes without a reconnect.
  hold = false;
  // Within the longest wait between two reads (30 s), whenever the page was let go.
  await page.getByText('Unread before 1').waitFor({ timeout: 45_000 });
  assert.equal(sockets.opened(), 1);
  await context.close();
});

test('a room deleted while the socket was down closes once it is back', async () => {
  const room = await newRoom('doomed');
  await post(room, 'Soon gone');
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Soon gone').waitFor();
  await connected(page, sockets);
  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  await server.api('DELETE', `/api/rooms/${room.id}/`, undefined, setup.ada);
  sockets.allow();
  // No frame tells of it: the catch-up's refused read does. It used to say so every 5 s.
  await page.getByText(/doomed is no longer open to you/).waitFor({ timeout: 30_000 });
  await waitFor(async () => !page.url().includes(`/room/${room.id}`), 20_000, 'the room to close');
  await context.close();
});

test('a reply that fails gives its text back without losing what was typed since', async () => {
  const room = await newRoom('reply fails');
  await post(room, 'A root to reply to');
  const { context, page } = await ada();
  let answer;
  const answered = new Promise((resolve) => { answer = resolve; });
  await page.route(`**/api/rooms/${room.id}/messages/`, async (route) => {
    if (route.request().method() !== 'POST') return route.fallback();
    await answered;
    return route.fulfill({ status: 503, contentType: 'application/json', body: '{"detail":"Busy.","code":"server_busy"}' });
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const root = page.locator('section.room > .scroller > ol.messages:not(.pending) > li.msg', { hasText: 'A root to reply to' });
  await root.waitFor();
  await root.hover();
  await root.getByRole('button', { name: 'Reply' }).click();
  const box = page.getByRole('complementary', { name: 'Thread' }).getByLabel('Reply in the thread');
  await box.fill('The reply that fails');
  await box.press('Enter');
  await waitFor(async () => (await box.inputValue()) === '', 10_000, 'the box to empty');
  await box.fill('Typed while it was sent');
  answer();
  await waitFor(async () => (await box.inputValue()).includes('The reply that fails'), 20_000, 'the failed reply back in the box');
  assert.equal(await box.inputValue(), 'The reply that fails\n\nTyped while it was sent');
  await context.close();
});

test('a thread link opens its thread in its own room, not in a room opened meanwhile', async () => {
  const room = await newRoom('slow');
  const other = await newRoom('quick');
  const root = await post(room, 'A thread in the slow room');
  const { context, page } = await ada();
  let held = null;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/` && !url.searchParams.has('before'), (route) => { held = route; });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}/thread/${root.id}`);
  await waitFor(() => held !== null, 30_000, 'the slow room to be asked for');
  await page.getByRole('link', { name: /# quick/ }).click();
  await page.getByRole('heading', { name: '# quick' }).waitFor();
  const answered = page.waitForResponse((response) => response.url().includes(`/api/rooms/${room.id}/messages/?limit=`));
  await held.fallback();
  await answered;
  await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 500)));
  assert.equal(await page.getByRole('complementary', { name: 'Thread' }).count(), 0);
  assert.deepEqual(await shownErrors(page), []);
  assert.equal(other.name, 'quick');
  await context.close();
});

test('picking a reaction with the keyboard leaves the focus on the message', async () => {
  const room = await newRoom('keys');
  await post(room, 'React to me');
  const { context, page } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const message = page.locator('li.msg', { hasText: 'React to me' });
  await message.hover();
  await message.getByRole('button', { name: 'React' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('group', { name: 'Pick a reaction' }).waitFor();
  await page.keyboard.press('Enter');
  await message.getByLabel(/1 reaction, including yours/).waitFor();
  const inMessage = await page.evaluate(() => Boolean(document.activeElement?.closest('li.msg')));
  assert.ok(inMessage, 'the focus is within the message');
  await context.close();
});

test('a newcomer\'s first message leaves the focus on the message the reader is on', async () => {
  // A frame from someone the page does not know yet makes it read the members and draw the
  // messages again, with their names: the focus used to drop to the page.
  // An organization of its own: the other tests' rooms keep their two members.
  const org = await server.api('POST', '/api/orgs/', { name: 'Newcomers' }, setup.ada);
  const room = await server.api('POST', '/api/rooms/', { org: org.id, name: 'welcome' }, setup.ada);
  await post(room, 'Focus on me', setup.ada);
  const { context, page } = await ada();
  await page.goto(`${server.url}/#/org/${org.id}/room/${room.id}`);
  const message = page.locator('li.msg', { hasText: 'Focus on me' });
  await message.hover();
  await message.getByRole('button', { name: 'React' }).focus();
  await server.api('POST', '/auth/register/', { email: 'cleo@example.com', password: PASSWORD, first_name: 'Cleo' });
  const cleo = await server.signIn('cleo@example.com', PASSWORD);
  const invite = await server.api('POST', `/api/orgs/${org.id}/invite/`, { email: 'cleo@example.com' }, setup.ada);
  await server.api('POST', '/api/orgs/accept-invite/', { token: invite.token }, cleo);
  await post(room, 'Hello from Cleo', cleo);
  await page.locator('li.msg', { hasText: 'Hello from Cleo' }).getByText('Cleo').first().waitFor();
  const inMessage = await page.evaluate(() => document.activeElement?.closest('li.msg')?.textContent ?? null);
  assert.ok(inMessage?.includes('Focus on me'), `the focus is on the message it was on: ${inMessage}`);
  await context.close();
});

test('a tall image at the end of a room keeps the view at the bottom once it loads', async () => {
  const room = await newRoom('photos');
  for (let n = 1; n <= 30; n += 1) await post(room, `Before the photo ${n}`);
  const { context, page } = await ada();
  // A 300×900 PNG, drawn by the browser.
  const dataUrl = await page.evaluate(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 300;
    canvas.height = 900;
    canvas.getContext('2d').fillRect(0, 0, 300, 900);
    return canvas.toDataURL('image/png');
  });
  const png = Buffer.from(dataUrl.split(',')[1], 'base64');
  const presigned = await server.api('POST', '/api/uploads/presign/', { filename: 'tall.png', content_type: 'image/png', size: png.length }, setup.bob);
  const put = await fetch(presigned.upload_url, { method: 'PUT', headers: presigned.headers, body: png });
  assert.ok(put.ok, `upload: ${put.status}`);
  await server.api('POST', `/api/uploads/${presigned.id}/complete/`, {}, setup.bob);
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { file_id: presigned.id }, setup.bob);

  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const img = page.locator('li.msg img.preview');
  await waitFor(() => img.evaluate((i) => i.complete && i.naturalHeight > 0), 20_000, 'the image to load');
  // The view follows in the image's `load` handler, which may run just after `complete` is
  // seen: wait for it (a view left behind stays behind, and this times out).
  const fromBottom = () => page.locator('.scroller').evaluate((s) => s.scrollHeight - s.scrollTop - s.clientHeight);
  await waitFor(async () => (await fromBottom()) < 48, 5_000, 'the view at the bottom');
  await context.close();
});

test('a connection that never opens says so', async () => {
  const { context, page, sockets } = await ada();
  // Every socket is refused from the start.
  await sockets.drop();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${setup.room.id}`);
  await page.getByRole('heading', { name: '# general' }).waitFor();
  await page.getByText('Reconnecting…').waitFor({ timeout: 20_000 });
  sockets.allow();
  await waitFor(async () => !(await page.getByText('Reconnecting…').isVisible()), 30_000, 'the socket to open');
  await context.close();
});

test('a room of more than 50 shows its member count without fetching its member list, and follows it across 50', async () => {
  // A second organization, so that the other tests' rooms keep their two members.
  const org = await server.api('POST', '/api/orgs/', { name: 'Big' }, setup.ada);
  const people = Array.from({ length: 50 }, (_, i) => `member${i}@example.com`);
  for (let i = 0; i < people.length; i += 5) {
    await Promise.all(people.slice(i, i + 5).map(async (email) => {
      await server.api('POST', '/auth/register/', { email, password: PASSWORD });
      const member = await server.signIn(email, PASSWORD);
      const invite = await server.api('POST', `/api/orgs/${org.id}/invite/`, { email }, setup.ada);
      await server.api('POST', '/api/orgs/accept-invite/', { token: invite.token }, member);
    }));
  }
  // A PUBLIC room seats every member of the organization: Ada and the 50.
  const big = await server.api('POST', '/api/rooms/', { org: org.id, name: 'town-square' }, setup.ada);
  assert.equal(big.members_count, 51);
  const side = await server.api('POST', '/api/rooms/', { org: org.id, name: 'side', access_level: 'PRIVATE' }, setup.ada);
  await post(big, 'Hello everyone', setup.ada);

  const { context, page } = await ada();
  const memberLists = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (/^\/api\/rooms\/\d+\/members\/$/.test(url.pathname) && !url.searchParams.has('q')) memberLists.push(url.pathname);
  });
  await page.goto(`${server.url}/#/org/${org.id}/room/${big.id}`);
  await page.locator('section.room[aria-busy="false"]').waitFor();
  await page.getByText('51 members', { exact: true }).waitFor();
  assert.deepEqual(memberLists, [], 'no whole member list for a room this large');
  assert.equal(await page.locator('.receipt').count(), 0);

  // A small room still lists its members: the online count and the receipts need them.
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${setup.room.id}`);
  await page.locator('section.room[aria-busy="false"]').waitFor();
  await page.getByText(/2 members · \d online/).waitFor();
  assert.deepEqual(memberLists, [`/api/rooms/${setup.room.id}/members/`]);

  // Back to 50 while the page's room list (read as the organization opened) still says 51: the
  // room, opened again, is small again (the view kept the count it was listed with).
  await page.goto(`${server.url}/#/org/${org.id}/room/${side.id}`);
  await page.locator('section.room[aria-busy="false"]').waitFor();
  const member0 = await server.signIn('member0@example.com', PASSWORD);
  await server.api('POST', `/api/rooms/${big.id}/leave/`, null, member0);
  await page.goto(`${server.url}/#/org/${org.id}/room/${big.id}`);
  await page.locator('section.room[aria-busy="false"]').waitFor();
  await page.getByText(/^50 members · \d+ online$/).waitFor();
  // Past 50 again while it is open, as the newcomer's first message shows it: no online count
  // (the server tells none for such a room) and no receipts.
  await server.api('POST', `/api/rooms/${big.id}/join/`, null, member0);
  await post(big, 'Back again', member0);
  await page.getByText('Back again').waitFor();
  await page.getByText('51 members', { exact: true }).waitFor();
  assert.equal(await page.locator('.receipt').count(), 0);
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a room kept open at the bottom lets its oldest messages go, and pages them back in order', async () => {
  const room = await newRoom('all day');
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('This is the start of').waitFor();
  await connected(page, sockets);
  await waitFor(() => sockets.received().some((frame) => frame.type === 'connection'), 20_000, 'the greeting');

  const ids = [];
  let next = 0;
  const postUpTo = async (count) => {
    const sender = async () => {
      while (next < count) {
        next += 1;
        ids.push((await post(room, `Line ${next}`)).id);
      }
    };
    await Promise.all(Array.from({ length: 8 }, sender));
    ids.sort((a, b) => a - b);
  };
  const shown = () => shownIds(page);
  const newestHeld = async (what) => {
    await waitFor(async () => (await shown()).at(-1) === ids.at(-1), 60_000, what);
    const held = await shown();
    assert.ok(held.length <= 1000 && held.length >= 600, `${held.length} messages held`);
    assert.deepEqual(held, ids.slice(-held.length), 'the newest, in order, without a gap');
  };
  // A message clicked early keeps the focus (messages take it for their keys): the trim
  // moves it on rather than keep every message from there on.
  await postUpTo(10);
  await page.getByText('Line 1', { exact: true }).click();
  assert.ok(await page.evaluate(() => Boolean(document.activeElement?.closest('li.msg'))), 'a message has the focus');
  await postUpTo(1050);
  await newestHeld('the newest message');
  await page.getByRole('button', { name: 'Load older messages' }).waitFor();

  // A catch-up long enough to trim the view as it comes: the page read again below where the
  // view stood is then older than all it holds, and is left out rather than drawn above a gap.
  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  await postUpTo(2050);
  sockets.allow();
  await connected(page, sockets);
  await newestHeld('the catch-up');
  const count = ids.length;

  // Scrolling back brings every one of them again, in order, none twice.
  const scroller = page.locator('.scroller');
  await waitFor(async () => {
    await scroller.evaluate((el) => { el.scrollTop = 0; });
    return (await shown()).length >= count;
  }, 60_000, 'every message paged back in');
  assert.deepEqual(await shown(), ids);
  await page.getByText('This is the start of').waitFor();
  await context.close();
});

test('a view far behind after a long disconnect starts over from the newest page instead of reading the whole gap', async () => {
  const room = await newRoom('weekend');
  await post(room, 'Before the weekend');
  const { context, page, sockets } = await ada();
  let caughtUp = 0;
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('after')) caughtUp += 1;
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Before the weekend').waitFor();
  await connected(page, sockets);

  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  caughtUp = 0;
  const newest = await postMany(room, 2500, 'Weekend');
  sockets.allow();
  await connected(page, sockets);
  const shown = () => shownIds(page);
  await waitFor(async () => (await shown()).at(-1) === newest, 60_000, 'the newest message');
  const held = await shown();
  assert.ok(held.length <= 100, `${held.length} messages held`);
  assert.ok(caughtUp <= 20, `${caughtUp} catch-up requests`);
  assert.equal(await page.getByText('Before the weekend').count(), 0);
  await page.getByRole('button', { name: 'Load older messages' }).waitFor();
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('paging back with the keyboard keeps the focus on the button, then on the oldest message', async () => {
  const room = await newRoom('paging');
  // Four pages: the newest 50, then 100, 100 and the last 70. The view may page one in by
  // itself as it first lays out (scrolled near the top for a moment): a page is left either
  // way after the first Enter. Three pages were not, when that happened.
  for (let i = 1; i <= 320; i += 1) await post(room, `Page line ${i}`);
  const { context, page } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Page line 320', { exact: true }).waitFor();
  const button = page.getByRole('button', { name: 'Load older messages' });
  await button.focus();
  const focused = () => page.evaluate(() => document.activeElement?.textContent);
  await page.keyboard.press('Enter');
  await page.getByText('Page line 171', { exact: true }).waitFor();
  await waitFor(async () => (await focused()) === 'Load older messages', 10_000, 'the focus on the button');
  // Until the last page: the button gives way to the room's start, and the focus goes to the
  // oldest.
  const start = page.getByText('This is the start of');
  for (let presses = 0; !(await start.isVisible()); presses += 1) {
    assert.ok(presses < 3, 'the start after three more pages at most');
    await waitFor(async () => (await focused()) === 'Load older messages' || start.isVisible(), 10_000, 'the button ready');
    if (await start.isVisible()) break;
    await page.keyboard.press('Enter');
    await waitFor(async () => (await focused()) !== 'Loading…', 10_000, 'the page in');
  }
  await waitFor(() => page.evaluate(() => {
    const message = document.activeElement?.closest('li.msg');
    return Boolean(message) && /Page line 1(?!\d)/.test(message.textContent);
  }), 10_000, 'the focus on the oldest message');
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a file is saved from the page even when its link takes seconds to come', async () => {
  const room = await newRoom('files');
  const text = Buffer.from('notes for the meeting\n');
  const presigned = await server.api('POST', '/api/uploads/presign/', { filename: 'notes.txt', content_type: 'text/plain', size: text.length }, setup.bob);
  const put = await fetch(presigned.upload_url.startsWith('http') ? presigned.upload_url : `${server.url}${presigned.upload_url}`, { method: 'PUT', headers: presigned.headers, body: text });
  assert.equal(put.status, 200);
  await server.api('POST', `/api/uploads/${presigned.id}/complete/`, {}, setup.bob);
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { file_id: presigned.id }, setup.bob);
  const { context, page } = await ada();
  // No window is opened for it: one opened once the link's answer had come (late here) was no
  // longer the user's doing, and a pop-up blocker refused it without a word.
  let windows = 0;
  context.on('page', () => { windows += 1; });
  // A pop-up blocker, as browsers have them: a window opened once the click's activation has
  // lapsed (5 s in Chromium, 1 s in Safari) is refused. Headless Chromium blocks nothing.
  await page.addInitScript(() => {
    const open = window.open.bind(window);
    window.open = (...args) => (navigator.userActivation.isActive ? open(...args) : null);
  });
  await page.route(`**/api/uploads/${presigned.id}/`, async (route) => {
    await new Promise((resolve) => setTimeout(resolve, 6000));
    await route.fallback();
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  const downloaded = page.waitForEvent('download', { timeout: 30_000 });
  await page.getByRole('button', { name: /notes\.txt/ }).click();
  const download = await downloaded;
  assert.equal(download.suggestedFilename(), 'notes.txt');
  assert.equal(windows, 0, 'no window opened');
  assert.match(page.url(), new RegExp(`/room/${room.id}$`));
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a room left open a little above the bottom holds no more than it may, and shows the newest once the reader goes down', async () => {
  const { room, context, page, sockets, reading } = await scrolledUp('scrolled up', 'Early line');
  const readingAt = async () => (await reading.boundingBox())?.y;
  const before = await readingAt();

  const newest = await postMany(room, 2500, 'Later line');
  const shown = () => shownIds(page);
  // Every message has reached the page (the last one posted is a frame it has had).
  await page.getByRole('button', { name: 'New messages ↓' }).waitFor();
  await waitFor(async () => sockets.received().some((frame) => frame.type === 'message' && frame.id === newest), 60_000, 'the last frame');
  const held = await shown();
  assert.ok(held.length <= 1000, `${held.length} messages held`);
  // The message being read stays in place.
  assert.equal(await readingAt(), before);
  // Going down brings the newest; the first try fails, and the view keeps what it held.
  let refused = 0;
  let latecomer = 0;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/` && url.search === '?limit=50', async (route) => {
    if (refused === 0) {
      refused += 1;
      return route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ detail: 'Try again later.', code: 'unavailable' }) });
    }
    // The second try's page is read before one more message, which reaches the page live
    // while the page is on its way: it must not be let go with the history it was added to.
    const response = await route.fetch();
    const { id } = await post(room, 'Posted while the page came');
    await waitFor(() => sockets.received().some((frame) => frame.type === 'message' && frame.id === id), 20_000, 'its frame');
    // A turn of the page's loop for the frame to be handled before the page: only the old
    // code's failure depends on it (it let the message go then).
    await page.evaluate(() => new Promise((resolve) => { setTimeout(resolve, 100); }));
    latecomer = id;
    return route.fulfill({ response });
  });
  await page.getByRole('button', { name: 'New messages ↓' }).click();
  await waitFor(async () => (await shownErrors(page)).length > 0, 20_000, 'the failure to be told');
  assert.equal((await shown()).length, held.length, 'the view keeps what it held');
  assert.equal(await readingAt(), before);
  await page.getByRole('button', { name: 'New messages ↓' }).click();
  await waitFor(async () => latecomer && (await shown()).at(-1) === latecomer, 30_000, 'the message posted while the page came');
  assert.ok((await shown()).includes(newest));
  assert.ok((await shown()).length <= 1000);
  await context.close();
});

test('a reconnect while messages wait below a scrolled-up view leaves them waiting, with no gap', async () => {
  const { room, context, page, sockets, newest } = await fullViewBehind('behind, reconnecting', 'First line');
  const shown = () => shownIds(page);
  const held = await shown();
  // As full as a view may be: newer messages wait below it.
  assert.ok(held.length >= 1000 && held.at(-1) < newest, `${held.length} held, up to ${held.at(-1)} of ${newest}`);

  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  const whileDown = await post(room, 'Posted while the socket was down');
  // The catch-up reads the gap, then what the view holds again (newest first), then the room's
  // members, and last says the reader's pointer again on the new socket: once that frame is
  // sent, the catch-up is over.
  const readsSent = () => sockets.sent().filter((frame) => frame.type === 'read').length;
  let heldReads = 0;
  let readsAtRoster = null;
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('before')) heldReads += 1;
    if (url.pathname === `/api/rooms/${room.id}/members/` && heldReads > 0 && readsAtRoster === null) readsAtRoster = readsSent();
  });
  sockets.allow();
  await connected(page, sockets);
  await waitFor(() => readsAtRoster !== null && readsSent() > readsAtRoster, 60_000, 'the catch-up to end');
  // The waiting messages are not drawn into the view past the ones it never held.
  assert.deepEqual(await shown(), held);
  assert.ok(await page.getByRole('button', { name: 'New messages ↓' }).isVisible());
  // Going down shows the newest, the one posted while the socket was down included.
  await page.getByRole('button', { name: 'New messages ↓' }).click();
  await page.getByText('Posted while the socket was down', { exact: true }).waitFor({ timeout: 20_000 });
  assert.ok((await shown()).includes(whileDown.id));
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('going down while a reconnect catches up shows the newest page once the catch-up is over', async () => {
  const { room, context, page, sockets } = await fullViewBehind('behind, going down', 'Opening line');
  await sockets.drop();
  await page.getByText('Reconnecting…').waitFor();
  await post(room, 'Posted while it was down');
  // The catch-up's read of the held messages waits until the reader has gone down.
  let release;
  const wentDown = new Promise((resolve) => { release = resolve; });
  let heldReads = 0;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('before'), async (route) => {
    heldReads += 1;
    await wentDown;
    return route.continue();
  });
  sockets.allow();
  await connected(page, sockets);
  await waitFor(() => heldReads > 0, 30_000, 'the catch-up under way');
  await page.getByRole('button', { name: 'New messages ↓' }).click();
  release();
  await page.getByText('Posted while it was down', { exact: true }).waitFor({ timeout: 30_000 });
  // The newest page, as the API lists it: nothing drawn past a gap.
  const latest = await server.api('GET', `/api/rooms/${room.id}/messages/?limit=50`, undefined, setup.ada);
  const expected = latest.results.map((m) => m.id).sort((a, b) => a - b);
  assert.deepEqual((await shownIds(page)).slice(-expected.length), expected);
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a file past its retention says so, and the page stays', async () => {
  const room = await newRoom('old files');
  const text = Buffer.from('minutes of a meeting long ago\n');
  const presigned = await server.api('POST', '/api/uploads/presign/', { filename: 'old.txt', content_type: 'text/plain', size: text.length }, setup.bob);
  const put = await fetch(presigned.upload_url.startsWith('http') ? presigned.upload_url : `${server.url}${presigned.upload_url}`, { method: 'PUT', headers: presigned.headers, body: text });
  assert.equal(put.status, 200);
  const done = await server.api('POST', `/api/uploads/${presigned.id}/complete/`, {}, setup.bob);
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { file_id: presigned.id }, setup.bob);
  const { context, page } = await ada();
  // As the API answers for a file whose time is up: no link.
  await page.route(`**/api/uploads/${presigned.id}/`, (route) => route.fulfill({
    status: 200, contentType: 'application/json', body: JSON.stringify({ ...done, status: 'expired', download_url: null }),
  }));
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByRole('button', { name: /old\.txt/ }).click();
  await waitFor(async () => (await shownErrors(page)).some((e) => e.includes('has expired')), 10_000, 'the notice');
  assert.match(page.url(), new RegExp(`/room/${room.id}$`));
  await context.close();
});

test('a reaction frame that arrives after a newer one changes nothing', async () => {
  const room = await newRoom('reactions');
  const message = await post(room, 'React to me');
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('React to me').waitFor();
  await connected(page, sockets);
  await waitFor(() => sockets.received().some((frame) => frame.type === 'connection'), 20_000, 'the greeting');
  const reactions = `/api/rooms/${room.id}/messages/${message.id}/reactions/`;
  await server.api('POST', reactions, { emoji: '👍' }, setup.bob);
  await server.api('POST', reactions, { emoji: '👍' }, setup.ada);
  const chip = page.locator(`#m-${message.id} .chip`);
  await waitFor(async () => (await chip.textContent()) === '👍 2', 20_000, 'both reactions shown');
  // Ada's frame alone says 2 (it may come first): Bob's must have come too before it is sent again.
  await waitFor(() => sockets.received().some((f) => f.type === 'reaction.added' && f.count === 1), 20_000, "Bob's frame");
  // Bob's frame again, as if it had been announced after Ada's (two requests publish in
  // either order): it says 1, from before Ada's.
  const first = sockets.received().find((f) => f.type === 'reaction.added' && f.count === 1);
  assert.equal(first.version, 1);
  sockets.inject(first);
  // A message after it: once it shows, the frame before it was handled.
  await post(room, 'After the late frame');
  await page.getByText('After the late frame').waitFor();
  assert.equal(await chip.textContent(), '👍 2');

  // A newer frame that changes nothing shown (🎉 taken off a message without one) still
  // counts: the older one after it (🎉 added) is not news.
  const frame = (type, emoji, count, version) => ({
    type, room: room.id, message_id: message.id, emoji, user_id: 424242, count, version, at: new Date().toISOString(),
  });
  sockets.inject(frame('reaction.removed', '🎉', 0, 100));
  sockets.inject(frame('reaction.added', '🎉', 1, 99));
  await post(room, 'After the two frames');
  await page.getByText('After the two frames').waitFor();
  assert.equal(await chip.count(), 1, `only 👍: ${await chip.allTextContents()}`);

  // Ada takes her 👍 back; while her request is on its way a frame says more about 👍: her
  // answer (which says nothing) does not put back what was shown when she clicked.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route('**/reactions/**', async (route) => {
    if (route.request().method() === 'DELETE') await held;
    await route.continue();
  });
  const answered = page.waitForResponse((r) => r.request().method() === 'DELETE');
  await chip.click();
  sockets.inject(frame('reaction.added', '👍', 5, 101));
  await waitFor(async () => (await chip.textContent()) === '👍 5', 20_000, 'the newer frame shown');
  release();
  await answered;
  await post(room, 'After the answer');
  await page.getByText('After the answer').waitFor();
  assert.equal(await chip.textContent(), '👍 5');
  await context.close();
});

test('a late answer for an earlier @prefix does not replace the completions of the one typed since', async () => {
  const room = await newRoom('completions');
  const { context, page } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('This is the start of').waitFor();
  // The answer for "@b" comes last, and names someone the reader is no longer typing.
  let asked = false;
  await page.route((url) => url.pathname.endsWith('/members/') && url.searchParams.get('q') === 'b', async (route) => {
    asked = true;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await route.fulfill({
      status: 200, contentType: 'application/json',
      body: JSON.stringify([{ user_id: 999999, email: 'stale@example.com', first_name: 'Stale', last_name: '', role: 'MEMBER' }]),
    });
  });
  const box = page.getByLabel('Message # completions');
  await box.click();
  await box.pressSequentially('@b');
  await waitFor(() => asked, 10_000, 'the lookup for "@b"');
  await box.pressSequentially('o');
  await page.getByRole('option', { name: /Bob <bob@example.com>/ }).waitFor();
  // The late answer has come, and the page has had its turn to handle it.
  await waitFor(() => page.evaluate(() => performance.getEntriesByType('resource').some((e) => e.name.includes('members/?q=b&'))), 10_000, 'the answer for "@b"');
  await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 100)));
  assert.equal(await page.getByRole('option', { name: /Stale/ }).count(), 0);
  await box.press('Enter');
  assert.equal(await box.inputValue(), '@bob@example.com ');
  await context.close();
});

test('completions asked for just after the composer got the focus back are shown', async () => {
  const room = await newRoom('refocused');
  const { context, page } = await ada();
  // The page's timers wait for the test: the completion's wait and the blur's go off together.
  await page.clock.install();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('This is the start of').waitFor();
  const box = page.getByLabel('Message # refocused');
  // Away and back at once, as after clicking a reaction or a link and then the composer.
  await box.focus();
  await box.evaluate((element) => { element.blur(); element.focus(); });
  await box.pressSequentially('@b');
  await page.clock.runFor(500);
  await page.getByRole('option', { name: /Bob <bob@example.com>/ }).waitFor({ timeout: 10_000 });
  await box.press('Enter');
  assert.equal(await box.inputValue(), '@bob@example.com ');
  await context.close();
});

test('reading a busy room from a little above its bottom does not read the room list again for each read', async () => {
  const room = await newRoom('reading along');
  for (let n = 1; n <= 40; n += 1) await post(room, `Earlier ${n}`);
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Earlier 40').waitFor();
  await connected(page, sockets);
  await page.locator('.scroller').evaluate((scroller) => { scroller.scrollTop = 0; });
  const later = [];
  for (let n = 1; n <= 10; n += 1) later.push(await post(room, `Later ${n}`));
  await page.getByRole('button', { name: 'New messages ↓' }).waitFor();
  const listReads = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/auth/me/unread-counts/') listReads.push(request.url());
  });
  // Down to where "Later 3" is the last message on screen: the read the page sends, and the
  // server echoes to it, stops short of the newest.
  await page.locator('.scroller').evaluate((scroller) => {
    const node = [...scroller.querySelectorAll('.msg')].find((n) => n.textContent.includes('Later 3'));
    scroller.scrollTop += node.getBoundingClientRect().bottom - scroller.getBoundingClientRect().bottom;
  });
  await waitFor(() => sockets.received().some((f) => f.type === 'read' && f.room === room.id
    && f.last_read_msg_id >= later[2].id && f.last_read_msg_id < later[9].id), 20_000, 'a partial read echoed');
  // Frames come in order: once a later message is on the page, the echo was handled.
  await post(room, 'After the read');
  await page.getByText('After the read').waitFor({ state: 'attached' });
  await page.evaluate(() => fetch('/health/live'));
  assert.deepEqual(listReads, []);
  await context.close();
});

test('a message deleted in a room not open takes back its unread count', async () => {
  const room = await newRoom('taken back');
  const { context, page, sockets } = await ada();
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  const link = page.getByRole('link', { name: /# taken back/ });
  await link.waitFor();
  await connected(page, sockets);
  await post(room, 'Stays');
  const goes = await post(room, 'Goes again');
  await link.getByTitle('2 unread').waitFor({ timeout: 20_000 });
  await server.api('DELETE', `/api/rooms/${room.id}/messages/${goes.id}/`, undefined, setup.bob);
  await link.getByTitle('1 unread').waitFor({ timeout: 20_000 });
  await context.close();
});

test('paging back that failed is not asked again by every scroll until its wait is over', async () => {
  const room = await newRoom('paging refused');
  const ids = [];
  for (let n = 1; n <= 60; n += 1) ids.push((await post(room, `Old ${n}`)).id);
  const { context, page, sockets } = await ada();
  // Paging back from the first page's oldest message (the newest 50: "Old 11" on); the socket's
  // catch-up, which reads the held messages again from above the newest, goes through.
  let asked = 0;
  await page.route((url) => url.pathname === `/api/rooms/${room.id}/messages/` && url.searchParams.has('before'), (route) => {
    if (new URL(route.request().url()).searchParams.get('before') !== String(ids[10])) return route.fallback();
    asked += 1;
    return route.fulfill({
      status: 429,
      headers: { 'Retry-After': '30', 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: 'rate_limited', detail: 'Too many requests.' }),
    });
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${room.id}`);
  await page.getByText('Old 60').waitFor();
  await connected(page, sockets);
  const scrollToTop = () => page.locator('.scroller').evaluate((scroller) => {
    scroller.scrollTop = 0;
    scroller.dispatchEvent(new Event('scroll'));
  });
  await scrollToTop();
  await page.getByText('Too many requests. Try again in 30 seconds.').first().waitFor();
  await page.getByRole('button', { name: 'Load older messages' }).waitFor();
  for (let n = 0; n < 5; n += 1) {
    await scrollToTop();
    await page.evaluate(() => fetch('/health/live'));
  }
  assert.equal(asked, 1);
  // The button still asks at once.
  await page.getByRole('button', { name: 'Load older messages' }).click();
  await waitFor(() => asked === 2, 20_000, 'the button to ask again');
  await context.close();
});
