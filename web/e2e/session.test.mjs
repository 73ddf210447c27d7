// Sessions and accounts outside the rooms: a sign-in page opened beside a kept session, the
// way out for someone without an organization, and a refusal that says when to try again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, browser, signedInPage, team, waitFor } from './harness.mjs';

const PASSWORD = 'correct horse battery';
let server;
let chromium;
let setup;

before(async () => {
  // One invitation an hour per user, to see the refusal.
  server = await Server.start({
    CHATBOARD_RATE_LIMIT_PER_IP: '0', CHATBOARD_RATE_LIMIT_PER_USER: '0', CHATBOARD_INVITES_PER_HOUR: '1',
  });
  chromium = await browser();
  setup = await team(server, PASSWORD);
});

after(async () => {
  await chromium?.close();
  await server?.close();
});

test('the sign-in page takes up the session this browser keeps, rather than start a second', async () => {
  // Signing in there replaced the refresh token the other tabs shared: they renewed as
  // whoever signed in, while still showing their own user.
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/signin`);
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  assert.match(page.url(), /#\/org\/\d+/);
  assert.equal(await page.getByLabel('Password').count(), 0, 'no sign-in form');
  await context.close();
});

test('someone without an organization can sign out', async () => {
  await server.api('POST', '/auth/register/', { email: 'cleo@example.com', password: PASSWORD, first_name: 'Cleo' });
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'cleo@example.com', PASSWORD);
  await page.goto(`${server.url}/#/`);
  await page.getByRole('heading', { name: 'New organization' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Password').waitFor();
  assert.match(page.url(), /#\/signin/);
  await waitFor(async () => (await page.evaluate(() => localStorage.getItem('chatboard.refresh'))) === null, 10_000, 'the session forgotten');
  await context.close();
});

test('an invitation past the hourly limit says when to try again', async () => {
  // Ada's one invitation of the hour brought Bob in (the team's setup).
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  await page.getByRole('button', { name: 'Invite people' }).click();
  await page.getByLabel('Email address').fill('second@example.com');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  // Said in the dialog, which stays open with what was typed (it closed, and a notice said it).
  const dialog = page.getByRole('dialog', { name: 'Invite someone' });
  const alert = dialog.getByRole('alert');
  await waitFor(async () => (await alert.textContent()).length > 0, 10_000, 'the refusal shown');
  const shown = await alert.textContent();
  assert.match(shown, /as many invitations as this server allows in an hour\. Try again in \d+ minutes\./, shown);
  assert.equal(await dialog.getByLabel('Email address').inputValue(), 'second@example.com');
  await context.close();
});

test('copying a link where the page may not use the clipboard says how, inside the dialog', async () => {
  // A plain-http origin has no clipboard API: Copy did nothing, and a notice would have shown
  // under the modal dialog, hidden.
  await server.api('POST', '/auth/register/', { email: 'dora@example.com', password: PASSWORD, first_name: 'Dora' });
  const dora = await server.signIn('dora@example.com', PASSWORD);
  const org = await server.api('POST', '/api/orgs/', { name: 'Dora & Co' }, dora);
  const context = await chromium.newContext();
  await context.addInitScript(() => Object.defineProperty(navigator, 'clipboard', { value: undefined }));
  const page = await signedInPage(context, server, 'dora@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${org.id}`);
  await page.getByRole('button', { name: 'Invite people' }).click();
  await page.getByLabel('Email address').fill('eve@example.com');
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  const shown = page.getByRole('dialog', { name: 'Invitation' });
  await shown.getByRole('button', { name: 'Copy link' }).click();
  await shown.getByText('Press Ctrl+C').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('aria-label')), 'Invitation link');
  await context.close();
});

test('closing a dialog gives the focus back to the button that opened it, drawn anew meanwhile', async () => {
  // The sidebar is redrawn as counts change: the button that opened the dialog was replaced,
  // and closing the dialog left the focus on the page's body.
  const other = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'elsewhere' }, setup.ada);
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${setup.room.id}`);
  // The room, once loaded, gives its composer the focus: wait for that before moving it.
  const box = page.getByLabel(`Message # ${setup.room.name}`);
  await waitFor(() => box.evaluate((el) => el === document.activeElement), 10_000, 'the composer to have the focus');
  const opener = page.getByRole('button', { name: '+ Message someone' });
  await opener.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Message someone' });
  await dialog.waitFor();
  // A message in another room: its unread count redraws the sidebar under the dialog.
  await server.api('POST', `/api/rooms/${other.id}/messages/`, { body: 'meanwhile' }, setup.bob);
  await page.getByRole('link', { name: /elsewhere.*1/ }).waitFor();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  // The dialog stops counting as one when it closes; its close event, which hands the focus
  // back, runs a moment later.
  const focused = () => page.evaluate(() => document.activeElement?.textContent);
  await waitFor(async () => (await focused()) === '+ Message someone', 10_000, 'the focus back on the opener');
  await context.close();
});

test('a direct message opened from its dialog takes the focus, the sidebar drawn anew under the dialog', async () => {
  // The opener, replaced by a redraw, is found again by the dialog's close event, a task of
  // its own: when the room opened first, it took the focus handed back for a move of the
  // person's, and left its composer without it.
  const other = await server.api('POST', '/api/rooms/', { org: setup.org.id, name: 'redrawn meanwhile' }, setup.ada);
  const { context, page, dialog } = await messageSomeoneDialog();
  await dialog.waitFor();
  await server.api('POST', `/api/rooms/${other.id}/messages/`, { body: 'meanwhile' }, setup.bob);
  await page.getByRole('link', { name: /redrawn meanwhile.*1/ }).waitFor();
  await openedWithComposerFocused(page, dialog);
  await context.close();
});

/** Ada's page on the organization, its "Message someone" dialog opened from the keyboard. */
async function messageSomeoneDialog() {
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  await page.getByRole('button', { name: '+ Message someone' }).focus();
  await page.keyboard.press('Enter');
  return { context, page, dialog: page.getByRole('dialog', { name: 'Message someone' }) };
}

/** Opens the dialog's direct message and checks that its composer has the focus. */
async function openedWithComposerFocused(page, dialog) {
  await dialog.getByRole('button', { name: 'Open' }).click();
  await page.locator('section.room[aria-busy="false"]').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.tagName), 'TEXTAREA');
}

test('a request refused with a token another request renewed meanwhile does not renew again', async () => {
  // A 401 dropped whatever token the tab held: one renewed by another request in between too,
  // which cost a second renewal (and refresh-token rotation) for nothing.
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  await page.getByRole('button', { name: '+ Message someone' }).waitFor();
  let renewals = 0;
  page.on('response', (response) => {
    if (response.url().endsWith('/auth/token/refresh/') && response.ok()) renewals += 1;
  });
  // Each probe is refused once (as an expired token is), and answered after that. The second
  // is refused only once the first comes back with the renewed token: the renewal is over
  // and the tab holds its token by then.
  const refused = new Set();
  let retried;
  const firstRetried = new Promise((resolve) => { retried = resolve; });
  await page.route('**/api/probe/*', async (route) => {
    const url = route.request().url();
    if (refused.has(url)) {
      if (url.endsWith('/a')) retried();
      return route.fulfill({ status: 200, contentType: 'application/json', body: '{}' });
    }
    refused.add(url);
    if (url.endsWith('/b')) await firstRetried;
    return route.fulfill({ status: 401, contentType: 'application/json', body: '{"code":"not_authenticated","detail":"expired"}' });
  });
  await page.evaluate(async () => {
    const app = document.querySelector('script[type="module"]').src;
    const { api } = await import(new URL('api.js', app).href);
    await Promise.all([api('GET', '/api/probe/a'), api('GET', '/api/probe/b')]);
  });
  assert.equal(renewals, 1, 'renewals of the access token');
  await context.close();
});

test('choosing an organization on the switcher with the keyboard keeps the focus there', async () => {
  // The new organization's shell replaced the switcher, and the focus went to the page's body:
  // the next arrow key scrolled the page instead of going on through the list.
  const second = await server.api('POST', '/api/orgs/', { name: 'Second shop' }, setup.ada);
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  const switcher = page.getByLabel('Organization');
  await switcher.focus();
  const values = await switcher.evaluate((el) => [...el.options].map((o) => o.value));
  const step = values.indexOf(String(second.id)) > values.indexOf(String(setup.org.id)) ? 'ArrowDown' : 'ArrowUp';
  assert.equal(Math.abs(values.indexOf(String(second.id)) - values.indexOf(String(setup.org.id))), 1, values.join());
  await page.keyboard.press(step);
  await page.getByRole('heading', { name: 'Second shop' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'org-select');
  await context.close();
});

test('a room that loads slowly leaves the focus where the person moved it meanwhile', async () => {
  // Once its messages were in, the room gave its composer the focus whatever had it by then.
  const context = await chromium.newContext();
  const page = await signedInPage(context, server, 'ada@example.com', PASSWORD);
  await page.goto(`${server.url}/#/org/${setup.org.id}`);
  const opener = page.getByRole('button', { name: '+ Message someone' });
  await opener.waitFor();
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  let asked = false;
  const firstPage = (url) => url.pathname === `/api/rooms/${setup.room.id}/messages/` && url.searchParams.has('limit') && !url.searchParams.has('before') && !url.searchParams.has('after');
  await page.route(firstPage, async (route) => {
    asked = true;
    await held;
    await route.continue();
  });
  await page.goto(`${server.url}/#/org/${setup.org.id}/room/${setup.room.id}`);
  await waitFor(async () => asked, 10_000, 'the room to ask for its messages');
  await opener.focus();
  release();
  await page.locator('section.room[aria-busy="false"]').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), '+ Message someone');
  await context.close();
});

test('a direct message opened from its dialog gives its composer the focus', async () => {
  // The dialog hands the focus back to "+ Message someone", which keeps it through the
  // sidebar's redraws: the room, opened from there, must still take it to its composer.
  const { context, page, dialog } = await messageSomeoneDialog();
  await openedWithComposerFocused(page, dialog);
  await context.close();
});
