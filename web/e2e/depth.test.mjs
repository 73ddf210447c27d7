// Threads, reactions, mentions and search in the browser: Ada posts, Bob answers in a thread
// and reacts, mentions Ada with the completion list; Ada sees it highlighted and on her
// Mentions page; Bob finds the message with a phrase search that another org's member cannot.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { OUTPUT, Server, accessibilityProblems, browser, signedInPage, team, waitFor, shownErrors } from './harness.mjs';

const PASSWORD = 'correct horse battery';
let server;
let chromium;
let setup;
let carolToken;

before(async () => {
  // Webhooks to this test's own receiver on loopback. The test signs in nine times within a
  // few seconds, near the default of 10 sign-ins a minute from one address: that limit is off.
  server = await Server.start({ CHATBOARD_WEBHOOK_ALLOW_PRIVATE: 'true', CHATBOARD_RATE_LIMIT_PER_IP: '0' });
  chromium = await browser();
  setup = await team(server, PASSWORD);
  // Carol has an organization of her own.
  await server.api('POST', '/auth/register/', { email: 'carol@example.com', password: PASSWORD, first_name: 'Carol' });
  carolToken = await server.signIn('carol@example.com', PASSWORD);
  await server.api('POST', '/api/orgs/', { name: 'Elsewhere' }, carolToken);
});

after(async () => {
  await chromium?.close();
  await server?.close();
});

test('threads, reactions, mentions and search', async () => {
  const viewport = { width: 1280, height: 800 };
  const adaContext = await chromium.newContext({ viewport });
  const bobContext = await chromium.newContext({ viewport });
  const ada = await signedInPage(adaContext, server, 'ada@example.com', PASSWORD);
  const bob = await signedInPage(bobContext, server, 'bob@example.com', PASSWORD);
  const errors = [];
  for (const page of [ada, bob]) page.on('pageerror', (error) => errors.push(String(error)));
  const roomUrl = `${server.url}/#/org/${setup.org.id}/room/${setup.room.id}`;
  await ada.goto(roomUrl);
  await bob.goto(roomUrl);

  const adaBox = ada.getByLabel('Message # general');
  await adaBox.fill('The release notes for 2.0 are ready');
  await adaBox.press('Enter');
  // The root in the room's timeline (a reply there quotes it, and the thread shows it too).
  const rootIn = (page) => page.locator('section.room > .scroller > ol.messages:not(.pending) > li.msg', { hasText: 'The release notes for 2.0 are ready', hasNotText: 'replied in a thread' });
  const rootOnBob = rootIn(bob);
  await rootOnBob.waitFor();

  // Bob answers in a thread.
  await rootOnBob.hover();
  await rootOnBob.getByRole('button', { name: 'Reply' }).click();
  const thread = bob.getByRole('complementary', { name: 'Thread' });
  await thread.getByLabel('Reply in the thread').fill('Looks great, shipping it');
  await thread.getByLabel('Reply in the thread').press('Enter');
  await thread.getByText('Looks great, shipping it').waitFor();
  await shot(bob, 'thread');
  assert.deepEqual(await accessibilityProblems(bob), [], 'accessibility problems with the thread open');

  // Bob follows the thread now (he replied): his Threads page lists it and opens it.
  await bob.getByRole('link', { name: '↳ Threads' }).click();
  await bob.getByRole('link', { name: /The release notes for 2.0 are ready/ }).click();
  await bob.getByRole('complementary', { name: 'Thread' }).getByText('Looks great, shipping it').waitFor();
  await bob.getByRole('button', { name: 'Close the thread' }).click();

  // Ada sees the root's reply count go up, and the thread's reply.
  const rootOnAda = rootIn(ada);
  await rootOnAda.getByRole('button', { name: '1 reply' }).click();
  await ada.getByRole('complementary', { name: 'Thread' }).getByText('Looks great, shipping it').waitFor();
  await ada.getByRole('button', { name: 'Close the thread' }).click();

  // Bob reacts; Ada sees the count; Ada adds the same emoji and the chip says 2, hers.
  await rootOnBob.hover();
  await rootOnBob.getByRole('button', { name: 'React' }).click();
  await rootOnBob.getByRole('button', { name: 'React with 🎉' }).click();
  await rootOnAda.getByRole('button', { name: '🎉 1 reaction' }).click();
  await rootOnAda.getByRole('button', { name: '🎉 2 reactions, including yours' }).waitFor();
  await rootOnBob.getByRole('button', { name: '🎉 2 reactions, including yours' }).waitFor();

  // Bob mentions Ada, completing her address from "@ad".
  const bobBox = bob.getByLabel('Message # general');
  await bobBox.click();
  await bobBox.pressSequentially('@ad');
  await bob.getByRole('option', { name: /Ada <ada@example.com>/ }).waitFor();
  await bobBox.press('Enter');
  assert.equal(await bobBox.inputValue(), '@ada@example.com ');
  await bobBox.pressSequentially('can you check the notes?');
  await bobBox.press('Enter');
  const mention = ada.locator('.msg .mention.me', { hasText: '@ada@example.com' });
  await mention.waitFor();

  // Ada's Mentions page lists it.
  await ada.getByRole('link', { name: /Mentions/ }).click();
  await ada.getByRole('heading', { name: 'Mentions' }).waitFor();
  await ada.locator('.result', { hasText: 'can you check the notes?' }).waitFor();

  // Bob searches for the phrase and finds the message, the words marked.
  await bob.getByRole('search').getByLabel('Search messages').first().fill('"release notes"');
  await bob.getByRole('search').getByLabel('Search messages').first().press('Enter');
  const hit = bob.locator('.result', { hasText: 'for 2.0 are ready' });
  await hit.waitFor();
  assert.equal((await hit.locator('mark').allTextContents()).join(' ').toLowerCase(), 'release notes');
  await shot(bob, 'search');
  assert.deepEqual(await accessibilityProblems(bob), [], 'accessibility problems on the search page');

  // Carol, in another organization, searches hers and finds nothing.
  const carolContext = await chromium.newContext({ viewport });
  const carol = await signedInPage(carolContext, server, 'carol@example.com', PASSWORD);
  await carol.goto(`${server.url}/#/`);
  await carol.getByRole('search').getByLabel('Search messages').fill('"release notes"');
  await carol.getByRole('search').getByLabel('Search messages').press('Enter');
  await carol.getByText('Nothing found for "release notes".').waitFor();
  // And asking Ada's organization's search directly answers as if it did not exist.
  await assert.rejects(server.api('GET', `/api/orgs/${setup.org.id}/search/?q=release`, undefined, carolToken), /404/);

  // Ada's organization page: an invitation sent, listed, revoked.
  await ada.goto(`${server.url}/#/org/${setup.org.id}/admin`);
  await ada.getByText('No open invitations.').waitFor();
  await ada.getByRole('button', { name: 'Invite someone' }).click();
  await ada.getByLabel('Email address').fill('dan@example.com');
  await ada.getByRole('button', { name: 'Invite', exact: true }).click();
  await ada.getByRole('button', { name: 'Done' }).click();
  await ada.getByRole('button', { name: 'Revoke the invitation for dan@example.com' }).click();
  await ada.getByText('No open invitations.').waitFor();

  // A webhook to a receiver of the test's own: added, tested, its delivery in the log.
  const received = [];
  const receiver = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => { received.push(JSON.parse(body)); response.end('ok'); });
  });
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
  await ada.getByRole('button', { name: 'Add a webhook' }).click();
  await ada.getByLabel('URL').fill(hookUrl);
  await ada.getByRole('button', { name: 'Add', exact: true }).click();
  // The signing secret, shown once, stays on screen until Ada is done with it.
  const secret = ada.getByLabel('Signing secret');
  await secret.waitFor();
  assert.match(await secret.inputValue(), /^whsec_/);
  await ada.getByRole('button', { name: 'Done' }).click();
  await ada.getByText(hookUrl).waitFor();
  await ada.getByRole('button', { name: 'Send a test' }).click();
  await waitFor(() => received.some((event) => event.type === 'webhook.test'), 30_000, 'the test event');
  await waitFor(async () => {
    await ada.getByRole('button', { name: 'Delivery log' }).click();
    return ada.getByRole('cell', { name: 'delivered' }).isVisible();
  }, 30_000, 'the delivery in the log');
  await shot(ada, 'organization-settings');
  receiver.close();

  // Bob leaves the room, then finds it again under "Browse rooms" and joins.
  const bobToken = setup.bob;
  await server.api('POST', `/api/rooms/${setup.room.id}/leave/`, undefined, bobToken);
  await bob.goto(`${server.url}/#/org/${setup.org.id}`);
  await bob.reload();
  await bob.getByRole('button', { name: 'Browse rooms' }).click();
  await bob.getByRole('dialog', { name: 'Join a room' }).getByText('# general (1)').waitFor();
  await bob.getByRole('button', { name: 'Join # general' }).click();
  await bob.getByRole('heading', { name: '# general' }).waitFor();
  await bob.getByText('The release notes for 2.0 are ready').first().waitFor();

  assert.deepEqual(errors, [], 'no script errors');
  for (const [name, page] of [['Ada', ada], ['Bob', bob]]) assert.deepEqual(await shownErrors(page), [], `errors shown to ${name}`);
  await carolContext.close();
  await adaContext.close();
  await bobContext.close();
});

async function shot(page, name) {
  await page.screenshot({ path: join(OUTPUT, `${name}.png`) });
}
