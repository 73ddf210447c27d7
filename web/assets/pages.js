// Whole-page screens outside an organization: sign in / register, accepting an invitation,
// creating an organization.

import { api, register, signIn } from './api.js';
import { h, replace } from './dom.js';
import { failed, go, loadOrgs, signOutHere, startSession, state } from './app.js';

function field(name, label, type = 'text', extra = {}) {
  const id = `auth-${name}`;
  return h('label', { for: id }, label, h('input', { id, name, type, ...extra }));
}

/** Sign in, or register (a link switches); afterwards goes to `next`. */
export function authPage(root, next, notice, registering = false) {
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, registering ? 'Create account' : 'Sign in');
  const form = h('form', { class: 'card auth', 'aria-label': registering ? 'Register' : 'Sign in' },
    h('h1', {}, 'ChatBoard'),
    h('h2', {}, registering ? 'Create your account' : 'Sign in'),
    notice ? h('p', { class: 'notice' }, notice) : null,
    registering ? field('first_name', 'First name', 'text', { autocomplete: 'given-name' }) : null,
    registering ? field('last_name', 'Last name', 'text', { autocomplete: 'family-name' }) : null,
    field('email', 'Email address', 'email', { required: true, autocomplete: 'email' }),
    field('password', 'Password', 'password', {
      required: true, minlength: registering ? 8 : null, maxlength: 128,
      autocomplete: registering ? 'new-password' : 'current-password',
    }),
    error,
    submit,
    h('p', {}, registering ? 'Have an account? ' : 'New here? ',
      h('button', { type: 'button', class: 'link', onclick: () => authPage(root, next, notice, !registering) },
        registering ? 'Sign in' : 'Create an account')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    submit.disabled = true;
    error.textContent = '';
    try {
      if (registering) await register(values);
      else await signIn(values.email, values.password);
      await startSession();
      go(next === '#/signin' || next === '#/register' ? '#/' : next);
    } catch (problem) {
      error.textContent = problem.fullMessage || String(problem);
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('div', { class: 'centered' }, form));
  form.querySelector('input')?.focus();
}

/** `#/invite/<token>`: join the organization that sent the link. */
export function invitePage(root, token) {
  const error = h('p', { class: 'error', role: 'alert' });
  const accept = h('button', {
    onclick: async () => {
      accept.disabled = true;
      try {
        const joined = await api('POST', '/api/orgs/accept-invite/', { token });
        await loadOrgs();
        // In place of the invitation's page: its token stays out of the browser's history.
        location.replace(`#/org/${joined.org_id}`);
      } catch (problem) {
        error.textContent = problem.status === 404
          ? 'This invitation was already used, was revoked, or has expired. Ask for a new one.'
          : problem.fullMessage;
        accept.disabled = false;
      }
    },
  }, 'Accept the invitation');
  replace(root, h('div', { class: 'centered' }, h('section', { class: 'card', 'aria-label': 'Invitation' },
    h('h1', {}, 'You are invited'),
    h('p', {}, `You are signed in as ${state.me.email}. The invitation must be for this address.`),
    error,
    h('div', { class: 'actions' },
      // Signed in with another address than the invited one: out, then in with that one
      // (the invitation's link is where the sign-in page comes back to).
      h('button', { class: 'secondary', onclick: () => signOutHere(`#/invite/${token}`) }, 'Use another account'),
      h('a', { href: '#/', class: 'button secondary' }, 'Not now'),
      accept))));
  accept.focus();
}

/** Creating an organization (the creator becomes its ADMIN). */
export function newOrgPage(root) {
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit' }, 'Create organization');
  const form = h('form', { class: 'card', 'aria-label': 'New organization' },
    h('h1', {}, 'New organization'),
    h('p', {}, 'An organization is a team: its members, rooms and settings. You will be its admin.'),
    field('name', 'Name', 'text', { required: true, maxlength: 120, placeholder: 'Acme' }),
    error,
    h('div', { class: 'actions' },
      // Without an organization there is no sidebar, and so no other way out.
      state.orgs.length ? h('a', { href: '#/', class: 'button secondary' }, 'Cancel')
        : h('button', { type: 'button', class: 'secondary', onclick: () => signOutHere() }, 'Sign out'),
      submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    // A second Enter while the first is on its way would create a second organization.
    if (submit.disabled) return;
    submit.disabled = true;
    error.textContent = '';
    try {
      const org = await api('POST', '/api/orgs/', { name: new FormData(form).get('name').trim() });
      await loadOrgs();
      go(`#/org/${org.id}`);
    } catch (problem) {
      error.textContent = problem.fullMessage || String(problem);
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('div', { class: 'centered' }, form));
  form.querySelector('input')?.focus();
}
