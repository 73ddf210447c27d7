// What the user sends from a room, until the server has it: an optimistic copy of each message
// drawn at once, posted idempotently (client_msg_id), retried by hand or, when the connection
// failed it, on its own once the connection is back; files uploaded first, a retry going on
// from the step that failed.

import { api, newClientMsgId, putFile } from './api.js';
import { fileSize, h } from './dom.js';
import { state } from './app.js';

export class Outbox {
  /** Pending items are drawn in `list`; `arrive(messages)` takes a confirmed message,
   * `toBottom()` brings the newest into view, and `lostAfterClose(item, error)` tells of an item
   * still on its way when the room closed that then failed. */
  constructor(roomId, list, { arrive, toBottom, lostAfterClose, giveBack }) {
    this.roomId = roomId;
    this.list = list;
    this.arrive = arrive;
    this.toBottom = toBottom;
    this.lostAfterClose = lostAfterClose;
    this.giveBack = giveBack;
    this.pending = new Map();
    this.closed = false;
  }

  /** Sends `content` ({body} or {body, upload, preview}). */
  queue(content) {
    const item = { ...content, client_msg_id: newClientMsgId(), status: 'sending' };
    this.pending.set(item.client_msg_id, item);
    this.draw(item);
    this.toBottom();
    if (item.upload) this.upload(item);
    else this.post(item);
  }

  async post(item) {
    item.status = 'sending';
    item.offline = false;
    this.draw(item);
    try {
      const message = await api('POST', `/api/rooms/${this.roomId}/messages/`, {
        body: item.body || undefined, file_id: item.file_id, client_msg_id: item.client_msg_id,
      });
      this.arrive([message]);
    } catch (error) {
      if (!this.pending.has(item.client_msg_id)) return;
      this.failed(item, error);
    }
  }

  /** `item` failed: shown with Retry, or, the room closed meanwhile, told of and dropped. */
  failed(item, error) {
    item.error = error.fullMessage || String(error);
    if (this.closed) {
      this.pending.delete(item.client_msg_id);
      if (!item.file_id) giveUp(item);
      if (item.preview) URL.revokeObjectURL(item.preview);
      this.lostAfterClose?.(item, item.error);
      return;
    }
    item.status = 'failed';
    item.offline = error.status === 0 || error.status >= 500;
    this.draw(item);
  }

  /** A confirmed message replaces the optimistic copy with the same client_msg_id. */
  settle(clientId, sender) {
    if (!clientId || sender !== state.me.id) return;
    const item = this.pending.get(clientId);
    if (!item) return;
    this.pending.delete(clientId);
    item.node?.remove();
    if (item.preview) URL.revokeObjectURL(item.preview);
  }

  /** Drops a failed item, giving up its upload if it was not stored for good yet (it would
   * count against the quotas until the janitor came to it); the text of one whose file never
   * got stored is given back, to be sent without it. */
  discard(item) {
    if (!item.file_id) {
      giveUp(item);
      if (item.upload && item.body) this.giveBack?.(item.body);
    }
    this.settle(item.client_msg_id, state.me.id);
  }

  draw(item) {
    const status = item.status === 'failed'
      ? h('div', { class: 'failed', role: 'alert' }, `Not sent: ${item.error} `,
        h('button', { class: 'link', onclick: () => this.resend(item) }, 'Retry'),
        h('button', { class: 'link', onclick: () => this.discard(item) }, 'Discard'))
      : h('div', { class: 'sending' }, item.progress !== undefined && item.progress < 1 ? `Uploading ${Math.round(item.progress * 100)}%` : 'Sending…');
    const node = h('li', { class: 'msg mine pending', dataset: { client: item.client_msg_id } },
      h('div', { class: 'meta' }, h('span', { class: 'author' }, 'You')),
      item.body ? h('div', { class: 'body' }, item.body) : null,
      item.preview ? h('img', { class: 'preview', src: item.preview, alt: item.upload.name }) : null,
      item.upload && !item.preview ? h('div', { class: 'file' }, `${item.upload.name} (${fileSize(item.upload.size)})`) : null,
      item.progress !== undefined && item.progress < 1 ? h('progress', { max: 1, value: item.progress, 'aria-label': 'Upload progress' }) : null,
      status);
    if (item.node) item.node.replaceWith(node);
    else this.list.append(node);
    item.node = node;
  }

  /** Tries a pending item again: its upload if the file is not stored yet, else its post. Not
   * once the room is closed: its failed items were discarded, and the user was told so. */
  resend(item) {
    if (this.closed || !this.pending.has(item.client_msg_id)) return null;
    return item.upload && !item.file_id ? this.upload(item) : this.post(item);
  }

  /** The connection is back: what it failed goes again. */
  resendOffline() {
    for (const item of this.pending.values()) if (item.status === 'failed' && item.offline) this.resend(item);
  }

  /** Uploads the item's file and posts it. A retry goes on from the step that failed (the
   * presigned upload, its bytes and its completion are kept), and a retry asked for twice
   * runs once. */
  async upload(item) {
    if (item.uploading) return;
    item.uploading = true;
    const file = item.upload;
    item.status = 'sending';
    item.offline = false;
    this.draw(item);
    try {
      item.presigned ??= await api('POST', '/api/uploads/presign/', {
        filename: file.name, content_type: uploadType(file), size: file.size,
      });
      if (!item.stored) {
        try {
          await putFile(item.presigned, file, (share) => {
            item.progress = share;
            this.draw(item);
          });
        } catch (error) {
          // Its URL may have lapsed: the next try asks for a new one.
          giveUp(item);
          throw error;
        }
        item.stored = true;
      }
      try {
        await api('POST', `/api/uploads/${item.presigned.id}/complete/`);
      } catch (error) {
        // The stored file is gone (the upload expired, or was removed): start over.
        if (error.status === 404 || ['not_uploaded', 'upload_expired'].includes(error.code)) {
          giveUp(item);
          item.stored = false;
        }
        throw error;
      }
      item.progress = 1;
      item.file_id = item.presigned.id;
    } catch (error) {
      this.failed(item, error);
      return;
    } finally {
      item.uploading = false;
    }
    await this.post(item);
  }

  /** The room is closed: failed items are discarded (their number is returned, for the user
   * to be told), and nothing is sent again. What is on its way goes on, and should it fail
   * the user is told (`lostAfterClose`). */
  close() {
    let unsent = 0;
    for (const [id, item] of this.pending) {
      if (item.status !== 'failed') continue;
      unsent += 1;
      if (!item.file_id) giveUp(item);
      if (item.preview) URL.revokeObjectURL(item.preview);
      this.pending.delete(id);
    }
    this.closed = true;
    return unsent;
  }
}

// The types browsers report under other names than the API's (Windows names a zip
// `application/x-zip-compressed`, Chrome an M4A `audio/x-m4a`), and the ones they leave empty,
// by extension: sent as reported, the API refused them (415).
const TYPE_ALIASES = {
  'application/x-zip-compressed': 'application/zip',
  'application/x-zip': 'application/zip',
  'audio/x-m4a': 'audio/mp4',
  'audio/m4a': 'audio/mp4',
  'audio/mp3': 'audio/mpeg',
  'audio/x-wav': 'audio/wav',
  'audio/wave': 'audio/wav',
  'image/jpg': 'image/jpeg',
  'text/x-markdown': 'text/markdown',
};
const TYPES_BY_EXTENSION = {
  md: 'text/markdown', markdown: 'text/markdown', txt: 'text/plain', csv: 'text/csv',
  zip: 'application/zip', m4a: 'audio/mp4', mp3: 'audio/mpeg', wav: 'audio/wav', ogg: 'audio/ogg',
  pdf: 'application/pdf', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif',
  webp: 'image/webp', mp4: 'video/mp4', webm: 'video/webm', mov: 'video/quicktime',
};

// The types the API takes (`ALLOWED_TYPES` in api-server/src/routes/uploads.rs).
const ACCEPTED = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'application/pdf',
  'text/plain', 'text/csv', 'text/markdown', 'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'application/vnd.ms-excel',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', 'application/vnd.ms-powerpoint',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text', 'application/vnd.oasis.opendocument.spreadsheet',
  'application/vnd.oasis.opendocument.presentation', 'application/zip', 'audio/mpeg', 'audio/ogg',
  'audio/wav', 'audio/webm', 'audio/mp4', 'video/mp4', 'video/webm', 'video/quicktime']);

/** The content type to declare for `file`, in the API's names: the one reported (or its
 * alias), else, reported as nothing or as a type the API does not take, its extension's. */
export function uploadType(file) {
  const reported = (file.type || '').toLowerCase();
  const named = TYPE_ALIASES[reported] || reported;
  if (ACCEPTED.has(named)) return named;
  const extension = file.name.includes('.') ? file.name.split('.').pop().toLowerCase() : '';
  return TYPES_BY_EXTENSION[extension] || named || 'application/octet-stream';
}

/** Forgets the item's presigned upload and gives it up on the server (best effort): an
 * unfinished upload would count against the user's upload quota for a day, and each retry
 * asks for a new one. */
function giveUp(item) {
  const presigned = item.presigned;
  item.presigned = null;
  if (presigned) api('DELETE', `/api/uploads/${presigned.id}/`).catch(() => {});
}
