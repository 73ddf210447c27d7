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
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), '+ Message someone');
  await context.close();
});
