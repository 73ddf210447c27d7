// Organizations as their admins and members see them change: stepping down, leaving, a role
// chosen with the keyboard, pages
// they may no longer open, a double submit, a first load the API could not answer (the session,
// or the organization's counts), rooms that
// go, pages of mentions, secrets left on screen, a busy thread's read requests, and browsing
// for rooms to join.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, browser, shownErrors, signedInPage, waitFor } from './harness.mjs';

const PASSWORD = 'correct horse battery';
let server;
let chromium;

before(async () => {
  server = await Server.start({
    CHATBOARD_RATE_LIMIT_PER_IP: '0', CHATBOARD_RATE_LIMIT_PER_USER: '0', CHATBOARD_WEBHOOK_ALLOW_PRIVATE: 'true',
  });
  chromium = await browser();
});

after(async () => {
  await chromium?.close();
  await server?.close();
});

/** Registers `email` and signs them in; returns their access token. */
async function person(email, firstName) {
  await server.api('POST', '/auth/register/', { email, password: PASSWORD, first_name: firstName });
  return server.signIn(email, PASSWORD);
}

/** `token` (signed in as `email`) joins `org` on an invitation from `admin` as `role`. */
async function join(org, admin, email, token, role = 'MEMBER') {
  const invite = await server.api('POST', `/api/orgs/${org.id}/invite/`, { email, role }, admin);
  await server.api('POST', '/api/orgs/accept-invite/', { token: invite.token }, token);
}

test('an admin who steps down or leaves sees the organization as they now may', async () => {
  const eve = await person('eve@example.com', 'Eve');
  const fay = await person('fay@example.com', 'Fay');
  const ivy = await person('ivy@example.com', 'Ivy');
  const org = await server.api('POST', '/api/orgs/', { name: 'Steps' }, eve);
  // Ivy stays ADMIN: an organization keeps at least one.
  await join(org, eve, 'fay@example.com', fay, 'ADMIN');
  await join(org, eve, 'ivy@example.com', ivy, 'ADMIN');

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'eve@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}/admin`);
  await page.getByRole('combobox', { name: 'Role of eve@example.com' }).selectOption('MEMBER');
  await page.getByRole('button', { name: 'Change the role of eve@example.com' }).click();
  // The shell is built again: no settings link, and the settings page is not offered.
  await page.getByRole('heading', { name: 'Steps' }).waitFor();
  await waitFor(async () => (await page.getByRole('link', { name: 'Organization settings' }).count()) === 0, 10_000, 'the settings link to go');
  assert.equal(await page.getByRole('button', { name: 'Invite people' }).count(), 0);
  await page.goto(`${server.url}/#/org/${org.id}/admin`);
  await waitFor(async () => (await shownErrors(page)).some((e) => e.includes('admins')), 10_000, 'the refusal');
  assert.deepEqual(await shownErrors(page), ['Only the organization\'s admins and managers can open this page.']);
  assert.equal(await page.locator('section.admin').count(), 0);
  await context.close();

  // Fay leaves from the settings page: she is in no organization now, and is offered a new one.
  const fayContext = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const fayPage = await signedInPage(fayContext, server, 'fay@example.com', PASSWORD);
  await fayPage.goto(`${server.url}/#/org/${org.id}/admin`);
  await fayPage.getByRole('cell', { name: 'fay@example.com', exact: true }).waitFor();
  await fayPage.getByRole('row', { name: /fay@example\.com/ }).getByRole('button', { name: 'Leave' }).click();
  await fayPage.getByRole('heading', { name: 'New organization' }).waitFor();
  assert.deepEqual(await shownErrors(fayPage), []);
  assert.deepEqual(await server.api('GET', '/api/orgs/', null, fay), []);
  await fayContext.close();
});

test('choosing a role with the arrow keys changes nothing until it is applied, and the focus stays on the menu', async () => {
  const kit = await person('kit@example.com', 'Kit');
  const lou = await person('lou@example.com', 'Lou');
  const org = await server.api('POST', '/api/orgs/', { name: 'Keys' }, kit);
  await join(org, kit, 'lou@example.com', lou);
  const louRole = async () => (await server.api('GET', `/api/orgs/${org.id}/members/`, null, kit)).find((m) => m.email === 'lou@example.com').role;

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'kit@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}/admin`);
  const menu = page.getByRole('combobox', { name: 'Role of lou@example.com' });
  await menu.focus();
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  assert.equal(await menu.inputValue(), 'ADMIN');
  // Nothing was sent on the way: Lou is still a member.
  assert.equal(await louRole(), 'MEMBER');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await waitFor(async () => (await louRole()) === 'MANAGER', 10_000, 'the role to change');
  await waitFor(() => page.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'Role of lou@example.com'), 10_000, 'the focus back on the menu');
  assert.equal(await page.getByRole('combobox', { name: 'Role of lou@example.com' }).inputValue(), 'MANAGER');
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('creating an organization twice quickly creates one', async () => {
  const gus = await person('gus@example.com', 'Gus');
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'gus@example.com', PASSWORD);
  // The creation is held until both submits are in.
  let releaseCreation;
  const held = new Promise((resolve) => { releaseCreation = resolve; });
  let creations = 0;
  await page.route('**/api/orgs/', async (route) => {
    if (route.request().method() === 'POST') {
      creations += 1;
      await held;
    }
    await route.continue();
  });
  await page.goto(`${server.url}/#/new-org`);
  const name = page.getByRole('textbox', { name: 'Name' });
  await name.fill('Once');
  await name.press('Enter');
  await waitFor(async () => creations === 1, 10_000, 'the first creation');
  await name.press('Enter');
  await page.getByRole('button', { name: 'Create organization' }).click({ force: true }).catch(() => {});
  releaseCreation();
  await page.getByRole('heading', { name: 'Once' }).waitFor();
  assert.equal(creations, 1);
  assert.deepEqual((await server.api('GET', '/api/orgs/', null, gus)).map((o) => o.name), ['Once']);
  await context.close();
});

test('a first load the API cannot answer offers to try again, and keeps the session', async () => {
  const hal = await person('hal@example.com', 'Hal');
  const org = await server.api('POST', '/api/orgs/', { name: 'Retry' }, hal);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'hal@example.com', PASSWORD);
  let down = true;
  await page.route('**/auth/me/', async (route) => {
    if (down) await route.fulfill({ status: 503, contentType: 'application/json', body: '{"detail":"Down for a moment.","code":"unavailable"}' });
    else await route.continue();
  });
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('heading', { name: 'ChatBoard could not load' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Sign in' }).count(), 0, 'no sign-in form');
  const kept = await page.evaluate(() => localStorage.getItem('chatboard.refresh'));
  assert.ok(kept, 'the session is kept');
  down = false;
  await page.getByRole('button', { name: 'Try again' }).click();
  await page.getByRole('heading', { name: 'Retry' }).waitFor();
  await context.close();
});

test('an organization whose rooms or counts cannot be read offers to try again, not an empty page', async () => {
  const ida = await person('ida@example.com', 'Ida');
  const org = await server.api('POST', '/api/orgs/', { name: 'Counts' }, ida);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'ida@example.com', PASSWORD);
  let down = true;
  await page.route('**/auth/me/unread-counts/', async (route) => {
    if (down) await route.fulfill({ status: 503, contentType: 'application/json', body: '{"detail":"Down for a moment.","code":"unavailable"}' });
    else await route.continue();
  });
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('heading', { name: 'ChatBoard could not load' }).waitFor();
  down = false;
  await page.getByRole('button', { name: 'Try again' }).click();
  await page.getByRole('heading', { name: 'Counts' }).waitFor();
  await context.close();
});

test('a room whose seat goes, or which is deleted, leaves the list at once', async () => {
  const jo = await person('jo@example.com', 'Jo');
  const kim = await person('kim@example.com', 'Kim');
  const org = await server.api('POST', '/api/orgs/', { name: 'Seats' }, jo);
  await join(org, jo, 'kim@example.com', kim);
  const doomed = await server.api('POST', '/api/rooms/', { org: org.id, name: 'doomed' }, jo);
  const elsewhere = await server.api('POST', '/api/rooms/', { org: org.id, name: 'elsewhere' }, jo);

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'kim@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}/room/${doomed.id}`);
  await page.getByRole('heading', { name: '# doomed' }).waitFor();
  await page.getByRole('link', { name: '# elsewhere' }).waitFor();

  // Kim leaves a room in another tab (here: the API): this page's list loses it.
  await server.api('POST', `/api/rooms/${elsewhere.id}/leave/`, null, kim);
  await waitFor(async () => (await page.getByRole('link', { name: '# elsewhere' }).count()) === 0, 10_000, 'the room left to go from the list');

  // The room open here is deleted: the view closes and says why.
  await server.api('DELETE', `/api/rooms/${doomed.id}/`, null, jo);
  await page.getByText('# doomed was deleted.').waitFor();
  await waitFor(async () => (await page.getByRole('heading', { name: '# doomed' }).count()) === 0, 10_000, 'the view to close');
  assert.equal(await page.getByRole('link', { name: '# doomed' }).count(), 0);
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('the Mentions page shows this organization\'s mentions, page by page', async () => {
  const lee = await person('lee@example.com', 'Lee');
  const max = await person('max@example.com', 'Max');
  const orgs = [];
  for (const name of ['Quiet', 'Busy']) {
    const org = await server.api('POST', '/api/orgs/', { name }, max);
    await join(org, max, 'lee@example.com', lee);
    const room = await server.api('POST', '/api/rooms/', { org: org.id, name: 'talk' }, max);
    orgs.push({ org, room });
  }
  const [quiet, busy] = orgs;
  await server.api('POST', `/api/rooms/${quiet.room.id}/messages/`, { body: '@lee@example.com the quiet one' }, max);
  // More mentions in the other organization than one page holds, all newer.
  for (let n = 0; n < 51; n += 1) {
    await server.api('POST', `/api/rooms/${busy.room.id}/messages/`, { body: `@lee@example.com busy ${n}` }, max);
  }
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'lee@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${quiet.org.id}/mentions`);
  await page.getByText('the quiet one').waitFor();
  assert.equal(await page.getByText(/busy \d+/).count(), 0);

  await page.goto(`${server.url}/#/org/${busy.org.id}/mentions`);
  await page.getByText('busy 50').waitFor();
  assert.equal(await page.locator('ol.results li').count(), 50);
  // With the keyboard: once the last page is in, the focus goes on from its first result
  // (it fell to the top of the page with the button).
  await page.getByRole('button', { name: 'Older' }).focus();
  await page.keyboard.press('Enter');
  await page.getByText('busy 0', { exact: false }).first().waitFor();
  await waitFor(async () => (await page.locator('ol.results li').count()) === 51, 10_000, 'the older page');
  assert.equal(await page.getByRole('button', { name: 'Older' }).count(), 0);
  await waitFor(() => page.evaluate(() => {
    const focused = document.activeElement;
    return Boolean(focused?.closest('ol.results li')) && focused.textContent.includes('busy 0');
  }), 10_000, 'the focus on the older page');
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('signing out in another tab takes a webhook secret off the screen', async () => {
  const ned = await person('ned@example.com', 'Ned');
  const org = await server.api('POST', '/api/orgs/', { name: 'Hooks' }, ned);
  // Two tabs of one browser, sharing the session: signed in through the form (a seeded
  // session would be seeded again, stale, by the second tab).
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${server.url}/#/org/${org.id}/admin`);
  await page.getByLabel('Email address').fill('ned@example.com');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByLabel('Password').press('Enter');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.goto(`${server.url}/#/org/${org.id}/admin`);
  await page.getByRole('cell', { name: 'ned@example.com', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Add a webhook' }).click();
  await page.getByRole('textbox', { name: 'URL' }).fill('http://127.0.0.1:9/hook');
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  const secret = page.getByRole('textbox', { name: 'Signing secret' });
  await secret.waitFor();
  assert.match(await secret.inputValue(), /^whsec_/);

  const other = await context.newPage();
  await other.goto(`${server.url}/#/org/${org.id}`);
  await other.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.locator('dialog').count(), 0, 'no dialog left open');
  assert.equal(await secret.count(), 0, 'the secret is gone');
  await context.close();
});

test('a busy thread moves its read pointer without a request per reply', async () => {
  const ola = await person('ola@example.com', 'Ola');
  const pat = await person('pat@example.com', 'Pat');
  const org = await server.api('POST', '/api/orgs/', { name: 'Busy thread' }, ola);
  await join(org, ola, 'pat@example.com', pat);
  const room = await server.api('POST', '/api/rooms/', { org: org.id, name: 'talk' }, ola);
  const root = await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'a question' }, ola);
  await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: 'first answer', parent_id: root.id }, ola);
  // Pat follows it, so the followed threads show Pat's pointer.
  await server.api('PUT', `/api/rooms/${room.id}/messages/${root.id}/thread/follow/`, null, pat);

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'pat@example.com', PASSWORD);
  let reads = 0;
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().includes('/thread/read/')) reads += 1;
  });
  await page.goto(`${server.url}/#/org/${org.id}/room/${room.id}/thread/${root.id}`);
  const panel = page.getByRole('complementary', { name: 'Thread' });
  await panel.getByText('first answer').waitFor();
  await waitFor(async () => reads >= 1, 10_000, 'the first read');
  const before = reads;
  const started = Date.now();
  let last;
  for (let n = 0; n < 10; n += 1) {
    last = await server.api('POST', `/api/rooms/${room.id}/messages/`, { body: `answer ${n}`, parent_id: root.id }, ola);
  }
  await panel.getByText('answer 9').waitFor();
  // At most one request per 2 s while they came, and one trailing request.
  const allowed = Math.ceil((Date.now() - started) / 2000) + 1;
  // The pointer reaches the last reply all the same.
  await waitFor(async () => {
    const threads = await server.api('GET', `/auth/me/threads/?org=${org.id}`, null, pat);
    return threads.results[0]?.last_read_id === last.id;
  }, 10_000, 'the read pointer at the last reply');
  assert.ok(reads - before <= Math.min(allowed, 9), `${reads - before} read requests for 10 replies (${allowed} allowed)`);
  await context.close();
});

test('webhooks on the settings page: several events, switched off and on, the log paged; invitations listed as made', async () => {
  const quinn = await person('quinn@example.com', 'Quinn');
  const org = await server.api('POST', '/api/orgs/', { name: 'Hooked' }, quinn);
  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'quinn@example.com', PASSWORD);
  page.on('dialog', (dialog) => dialog.accept());
  await page.goto(`${server.url}/#/org/${org.id}/admin`);
  await page.getByRole('cell', { name: 'quinn@example.com', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Add a webhook' }).click();
  await page.getByRole('textbox', { name: 'URL' }).fill('http://127.0.0.1:9/hook');
  await page.getByRole('listbox', { name: 'Events (one or more)' }).selectOption(['message.created', 'reaction.added']);
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await page.getByRole('button', { name: 'Done' }).click();
  const hook = page.locator('ul.hooks li');
  await hook.getByText('message.created, reaction.added').waitFor();

  // Off: no test to send (the server would refuse it); on again: it is back.
  await hook.getByRole('button', { name: 'Switch off' }).click();
  await hook.getByText('· off').waitFor();
  assert.equal(await hook.getByRole('button', { name: 'Send a test' }).count(), 0);
  await hook.getByRole('button', { name: 'Switch on' }).click();
  await hook.getByRole('button', { name: 'Send a test' }).waitFor();

  // More deliveries than a page of the log.
  const [{ id }] = await server.api('GET', `/api/webhooks/?org=${org.id}`, null, quinn);
  for (let n = 0; n < 21; n += 1) await server.api('POST', `/api/webhooks/${id}/test/`, null, quinn);
  await hook.getByRole('button', { name: 'Delivery log' }).click();
  await waitFor(async () => (await hook.locator('tbody tr').count()) === 20, 10_000, 'the first page of the log');
  await hook.getByRole('button', { name: 'Older deliveries' }).click();
  await waitFor(async () => (await hook.locator('tbody tr').count()) === 21, 10_000, 'the older page');

  // An invitation made from the sidebar shows in the open settings page's list.
  await page.getByRole('button', { name: 'Invite people' }).click();
  await page.getByRole('textbox', { name: 'Email address' }).fill('rex@example.com');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  await page.getByRole('button', { name: 'Done' }).click(); // the link's dialog
  await page.getByRole('cell', { name: 'rex@example.com', exact: true }).waitFor();
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('Browse rooms narrows a long list by name and offers managers their rooms', async () => {
  const sam = await person('sam@example.com', 'Sam');
  const tia = await person('tia@example.com', 'Tia');
  const org = await server.api('POST', '/api/orgs/', { name: 'Many rooms' }, sam);
  await join(org, sam, 'tia@example.com', tia);
  // 55 rooms Tia left, and one for managers created while she was a member.
  for (let i = 1; i <= 55; i += 1) {
    const room = await server.api('POST', '/api/rooms/', { org: org.id, name: `room-${String(i).padStart(2, '0')}` }, sam);
    await server.api('POST', `/api/rooms/${room.id}/leave/`, undefined, tia);
  }
  await server.api('POST', '/api/rooms/', { org: org.id, name: 'zz-managers', access_level: 'MANAGER_ONLY' }, sam);
  const members = await server.api('GET', `/api/orgs/${org.id}/members/`, null, sam);
  const tiaId = members.find((m) => m.email === 'tia@example.com').user_id;
  await server.api('POST', `/api/orgs/${org.id}/members/${tiaId}/role/`, { role: 'MANAGER' }, sam);

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'tia@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('button', { name: 'Browse rooms' }).click();
  const dialog = page.getByRole('dialog', { name: 'Join a room' });
  await dialog.getByText('The first 50 by name').waitFor();
  assert.equal(await dialog.getByRole('listitem').count(), 50);
  // Beyond the first 50: found by the start of its name.
  await dialog.getByRole('searchbox', { name: 'Name starts with' }).fill('zz');
  await dialog.getByRole('button', { name: 'Join # zz-managers' }).waitFor();
  assert.equal(await dialog.getByRole('listitem').count(), 1);
  await dialog.getByRole('searchbox', { name: 'Name starts with' }).fill('nothing');
  await dialog.getByText('No room you can join starts with that.').waitFor();
  await dialog.getByRole('searchbox', { name: 'Name starts with' }).fill('ZZ');
  await dialog.getByRole('button', { name: 'Join # zz-managers' }).click();
  await page.getByRole('heading', { name: '# zz-managers' }).waitFor();
  assert.equal(await page.getByRole('dialog').count(), 0);
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('a manager sees and revokes the open invitations they may', async () => {
  const vic = await person('vic@example.com', 'Vic');
  const uma = await person('uma@example.com', 'Uma');
  const org = await server.api('POST', '/api/orgs/', { name: 'Invites' }, vic);
  await join(org, vic, 'uma@example.com', uma, 'MANAGER');
  await server.api('POST', `/api/orgs/${org.id}/invite/`, { email: 'wes@example.com', role: 'ADMIN' }, vic);
  await server.api('POST', `/api/orgs/${org.id}/invite/`, { email: 'xan@example.com', role: 'MEMBER' }, vic);

  const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await signedInPage(context, server, 'uma@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('link', { name: 'Invitations' }).click();
  const section = page.getByRole('region', { name: 'Invitations' });
  await section.getByRole('cell', { name: 'wes@example.com', exact: true }).waitFor();
  // Members and webhooks are the admins' part of the page.
  assert.equal(await section.getByRole('heading', { name: 'Members' }).count(), 0);
  assert.equal(await section.getByRole('heading', { name: 'Webhooks' }).count(), 0);
  assert.equal(await section.getByRole('button', { name: 'Revoke the invitation for wes@example.com' }).count(), 0);
  await section.getByRole('button', { name: 'Revoke the invitation for xan@example.com' }).click();
  await waitFor(async () => (await section.getByRole('cell', { name: 'xan@example.com', exact: true }).count()) === 0, 10_000, 'the revoked invitation to go');
  const open = await server.api('GET', `/api/orgs/${org.id}/invitations/`, null, vic);
  assert.deepEqual(open.map((invite) => invite.email), ['wes@example.com']);
  // A manager invites members and managers, not admins.
  await section.getByRole('button', { name: 'Invite someone' }).click();
  const roles = await page.getByRole('dialog', { name: 'Invite someone' }).getByRole('combobox', { name: 'Role' })
    .locator('option').allTextContents();
  assert.deepEqual(roles, ['MEMBER', 'MANAGER']);
  await page.getByRole('dialog', { name: 'Invite someone' }).getByRole('textbox', { name: 'Email address' }).fill('yan@example.com');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  await page.getByRole('button', { name: 'Done' }).click();
  await section.getByRole('cell', { name: 'yan@example.com', exact: true }).waitFor();
  assert.deepEqual(await shownErrors(page), []);
  await context.close();
});

test('signing out ends the session on the server, or says that it could not', async () => {
  const zed = await person('zed@example.com', 'Zed');
  const org = await server.api('POST', '/api/orgs/', { name: 'Zed & co' }, zed);
  const refreshStatus = async (refresh) => (await fetch(`${server.url}/auth/token/refresh/`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ refresh }),
  })).status;
  const signedIn = async () => {
    const context = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await signedInPage(context, server, 'zed@example.com', PASSWORD);
    await page.goto(`${server.url}/#/org/${org.id}`);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    return { context, page, refresh: () => page.evaluate(() => localStorage.getItem('chatboard.refresh')) };
  };

  // The server cannot take the sign-out: this device forgets the session, and says it lives on.
  const failing = await signedIn();
  await failing.page.route('**/auth/logout/', (route) => route.fulfill({
    status: 503, contentType: 'application/json', body: '{"code":"unavailable","detail":"Try again."}',
  }));
  const kept = await failing.refresh();
  await failing.page.getByRole('button', { name: 'Sign out' }).click();
  await failing.page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await waitFor(async () => (await shownErrors(failing.page)).some((e) => e.includes('could not be reached')), 10_000, 'the notice');
  assert.equal(await failing.refresh(), null, 'forgotten on this device');
  assert.equal(await refreshStatus(kept), 200, 'the session lives on, as the notice says');
  await failing.context.close();

  // A sign-out the server takes ends the session there, without a word.
  const good = await signedIn();
  const ended = await good.refresh();
  await good.page.getByRole('button', { name: 'Sign out' }).click();
  await good.page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await refreshStatus(ended), 401);
  assert.deepEqual(await shownErrors(good.page), []);
  await good.context.close();
});
