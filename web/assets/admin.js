// The organization page for ADMINs: members and roles, invitations, webhooks with their
// delivery log and a test button. MANAGERs, who may invite too, get its open invitations alone.

import { api } from './api.js';
import { askForm, copyFrom, displayName, h, replace, shortTime, toast } from './dom.js';
import { failed, ownSeatChanged, paneHeader, showInviteLink, state } from './app.js';

const ROLES = ['MEMBER', 'MANAGER', 'ADMIN'];
// The event types a webhook may ask for (`*` alone means all of them; `webhook.test` is sent on
// request, whatever the filter).
const EVENTS = ['*', 'message.created', 'message.updated', 'message.deleted', 'message.mentioned',
  'thread.updated', 'reaction.added', 'reaction.removed', 'room.created', 'member.invited',
  'member.joined', 'member.left', 'member.role_changed'];
/** Delivery log entries per page. */
const LOG_PAGE = 20;

export class AdminView {
  constructor(org) {
    this.org = org;
    this.admin = org.role === 'ADMIN';
    this.membersBox = h('div');
    this.invitesBox = h('div');
    this.hooksBox = h('div');
    this.element = h('section', { class: 'admin', 'aria-label': this.admin ? 'Organization settings' : 'Invitations' },
      paneHeader(this.admin ? `${org.name} settings` : `${org.name} invitations`),
      h('div', { class: 'admin-body' },
        this.admin ? [h('h2', {}, 'Members'), this.membersBox] : null,
        h('h2', {}, 'Open invitations'), this.invitesBox,
        h('button', { onclick: () => this.invite() }, 'Invite someone'),
        this.admin ? [h('h2', {}, 'Webhooks'), this.hooksBox,
          h('button', { onclick: () => this.addHook() }, 'Add a webhook')] : null));
  }

  async mounted() {
    const parts = this.admin ? [this.drawMembers(), this.drawInvites(), this.drawHooks()] : [this.drawInvites()];
    await Promise.all(parts).catch(failed);
  }

  destroy() {}

  async drawMembers() {
    const members = await api('GET', `/api/orgs/${this.org.id}/members/`);
    state.members = new Map(members.map((m) => [m.user_id, m]));
    replace(this.membersBox, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Email'), h('th', {}, 'Role'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, members.map((m) => h('tr', {},
        h('td', {}, displayName(m)),
        h('td', {}, m.email),
        h('td', {}, this.roleChooser(m)),
        h('td', {}, h('button', { class: 'link danger', onclick: () => this.removeMember(m) }, m.user_id === state.me.id ? 'Leave' : 'Remove')))))));
  }

  /** A member's role menu and the button that applies it: a select changes on every arrow
   * key, so choosing is not yet changing (a keyboard would pass through every role between). */
  roleChooser(member) {
    const select = h('select', {
      'aria-label': `Role of ${member.email}`,
      onchange: () => { apply.disabled = select.value === member.role; },
    }, ROLES.map((role) => h('option', { value: role, selected: role === member.role }, role)));
    const apply = h('button', {
      class: 'link',
      disabled: true,
      'aria-label': `Change the role of ${member.email}`,
      onclick: () => this.setRole(member, select.value),
    }, 'Change');
    return [select, ' ', apply];
  }

  async setRole(member, role) {
    const self = member.user_id === state.me.id;
    // Giving up one's own role takes a yes.
    if (self && !confirm(`Make yourself ${role} in ${this.org.name}? Another admin would have to undo it.`)) {
      await this.drawMembers().catch(failed);
      return;
    }
    try {
      await api('POST', `/api/orgs/${this.org.id}/members/${member.user_id}/role/`, { role });
      toast(`${member.email} is now ${role}.`);
      if (self) return ownSeatChanged(false);
    } catch (error) {
      failed(error);
    }
    // A demotion revokes the invitations the role no longer allows (README).
    await Promise.all([this.drawMembers(), this.drawInvites()]).catch(failed);
    // The table is drawn anew: the focus goes back to the member's menu, not to the page.
    [...this.membersBox.querySelectorAll('select')].find((menu) => menu.getAttribute('aria-label') === `Role of ${member.email}`)?.focus();
  }

  async removeMember(member) {
    const self = member.user_id === state.me.id;
    if (!confirm(self ? `Leave ${this.org.name}?` : `Remove ${member.email} from ${this.org.name}?`)) return;
    try {
      await api('DELETE', `/api/orgs/${this.org.id}/members/${member.user_id}/`);
      if (self) {
        toast(`You left ${this.org.name}.`);
        return ownSeatChanged(true);
      }
      // Their open invitations were revoked with them.
      await Promise.all([this.drawMembers(), this.drawInvites()]);
    } catch (error) {
      failed(error);
    }
  }

  async drawInvites() {
    const open = await api('GET', `/api/orgs/${this.org.id}/invitations/`);
    replace(this.invitesBox, open.length === 0 ? h('p', {}, 'No open invitations.') : h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Email'), h('th', {}, 'Role'), h('th', {}, 'Expires'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, open.map((invite) => h('tr', {},
        h('td', {}, invite.email), h('td', {}, invite.role), h('td', {}, shortTime(invite.expires_at)),
        // A MANAGER may not revoke an invitation to be ADMIN (the API answers 403).
        h('td', {}, this.admin || invite.role !== 'ADMIN'
          ? h('button', { class: 'link danger', 'aria-label': `Revoke the invitation for ${invite.email}`, onclick: () => this.revoke(invite) }, 'Revoke')
          : null))))));
  }

  async revoke(invite) {
    if (!confirm(`Revoke the invitation for ${invite.email}? Its link stops working.`)) return;
    try {
      await api('DELETE', `/api/orgs/${this.org.id}/invitations/${invite.id}/`);
      await this.drawInvites();
    } catch (error) {
      failed(error);
    }
  }

  async invite() {
    const created = await askForm('Invite someone', [
      { name: 'email', label: 'Email address', type: 'email' },
      { name: 'role', label: 'Role', options: (this.admin ? ROLES : ROLES.slice(0, 2)).map((r) => [r, r]) },
    ], 'Invite', (values) => api('POST', `/api/orgs/${this.org.id}/invite/`, values));
    if (!created) return;
    try {
      showInviteLink(created);
      await this.drawInvites();
    } catch (error) {
      failed(error);
    }
  }

  async drawHooks() {
    const hooks = await api('GET', `/api/webhooks/?org=${this.org.id}`);
    replace(this.hooksBox, hooks.length === 0 ? h('p', {}, 'No webhooks yet.') : h('ul', { class: 'hooks' }, hooks.map((hook) => {
      const log = h('div', { class: 'deliveries' });
      const off = hook.disabled_reason ? ` · off: ${hook.disabled_reason}` : ' · off';
      // Switched off by the worker once it has failed long enough (README: webhooks).
      const failing = hook.is_active && hook.failing_since
        ? ` · failing since ${new Date(hook.failing_since).toLocaleString()}` : '';
      return h('li', {},
        h('div', {}, h('strong', {}, hook.url), ` · ${hook.events.join(', ')}`, hook.is_active ? failing : off,
          hook.managed ? ' · managed by the operator' : ''),
        h('div', { class: 'actions' },
          // The server refuses a test through a webhook that is off.
          hook.is_active ? h('button', { class: 'link', onclick: () => this.test(hook, log) }, 'Send a test') : null,
          h('button', { class: 'link', onclick: () => this.showLog(hook, log) }, 'Delivery log'),
          hook.managed ? null : h('button', {
            class: 'link',
            onclick: () => this.switchHook(hook),
          }, hook.is_active ? 'Switch off' : 'Switch on'),
          hook.managed ? null : h('button', { class: 'link danger', onclick: () => this.removeHook(hook) }, 'Delete')),
        log);
    })));
  }

  async addHook() {
    const hook = await askForm('Add a webhook', [
      { name: 'url', label: 'URL', type: 'url', placeholder: 'https://example.com/hooks/chatboard' },
      {
        name: 'events', label: 'Events (one or more)', multiple: true, value: ['*'],
        options: EVENTS.map((e) => [e, e === '*' ? 'Every event' : e]),
      },
    ], 'Add', (values) => api('POST', '/api/webhooks/', { org: this.org.id, url: values.url, events: values.events }));
    if (!hook) return;
    try {
      showSecret(hook);
      await this.drawHooks();
    } catch (error) {
      failed(error);
    }
  }

  /** Switches a webhook off (its deliveries wait) or on again (they are due at once, and why
   * delivery had switched it off is forgotten). */
  async switchHook(hook) {
    try {
      await api('PATCH', `/api/webhooks/${hook.id}/`, { is_active: !hook.is_active });
      toast(hook.is_active ? 'Webhook switched off.' : 'Webhook switched on.');
      await this.drawHooks();
    } catch (error) {
      failed(error);
    }
  }

  async removeHook(hook) {
    if (!confirm(`Delete the webhook to ${hook.url}?`)) return;
    try {
      await api('DELETE', `/api/webhooks/${hook.id}/`);
      await this.drawHooks();
    } catch (error) {
      failed(error);
    }
  }

  async test(hook, log) {
    try {
      await api('POST', `/api/webhooks/${hook.id}/test/`);
      toast('Test event queued.');
      setTimeout(() => this.showLog(hook, log), 1500);
    } catch (error) {
      failed(error);
    }
  }

  /** The delivery log, newest first, a page at a time (`before`: older than that delivery). */
  async showLog(hook, log, before = null) {
    try {
      const deliveries = await api('GET', `/api/webhooks/${hook.id}/events/?limit=${LOG_PAGE}${before ? `&before=${before}` : ''}`);
      const rows = deliveries.map((d) => h('tr', {},
        h('td', {}, d.event_type), h('td', {}, d.status), h('td', {}, String(d.attempts)),
        h('td', {}, d.last_status_code ? String(d.last_status_code) : d.last_error || ''),
        h('td', {}, shortTime(d.created_at))));
      const older = deliveries.length === LOG_PAGE
        ? h('button', {
          class: 'link',
          onclick: (event) => {
            event.currentTarget.remove();
            this.showLog(hook, log, deliveries[deliveries.length - 1].id);
          },
        }, 'Older deliveries')
        : null;
      const body = log.querySelector('tbody');
      if (before && body) {
        body.append(...rows);
        if (older) log.append(older);
        return;
      }
      replace(log, deliveries.length === 0 ? h('p', {}, 'No deliveries yet.') : [h('table', {},
        h('thead', {}, h('tr', {}, ['Event', 'Status', 'Attempts', 'Answer', 'When'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows)), older]);
    } catch (error) {
      failed(error);
    }
  }
}

/** The new webhook's signing secret, which no request returns again: kept on screen until
 * dismissed (a notice that went away by itself lost it). */
function showSecret(hook) {
  const input = h('input', { value: hook.secret, readonly: true, 'aria-label': 'Signing secret', class: 'invite-link' });
  const dialog = h('dialog', { class: 'dialog', 'aria-label': 'Webhook added' },
    h('h2', {}, 'Webhook added'),
    h('p', {}, 'Its deliveries are signed with this secret. Keep it now: it is shown only this once (lost, delete the webhook and add it again).'),
    input,
    h('div', { class: 'actions' },
      h('button', { class: 'secondary', onclick: () => copyFrom(input, 'Secret') }, 'Copy secret'),
      h('button', { onclick: () => dialog.close() }, 'Done')));
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  input.select();
}
