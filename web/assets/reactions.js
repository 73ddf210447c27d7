// Emoji reactions on a message: chips with counts (pressed when the reader reacted), a small
// picker, and the live frames that change them.

import { api } from './api.js';
import { h } from './dom.js';
import { failed } from './app.js';

/** The picker's choices; any Unicode emoji or :shortcode: works through the API. */
const CHOICES = ['👍', '❤️', '😂', '🎉', '👀', '🙏', '✅', '🚀'];

function path(message, emoji) {
  const base = `/api/rooms/${message.room}/messages/${message.id}/reactions/`;
  return emoji ? `${base}${encodeURIComponent(emoji)}/` : base;
}

/** Adds or takes back the reader's `emoji`; resolves with the message's new reactions. */
export async function toggleReaction(message, emoji) {
  const mine = (message.reactions || []).some((r) => r.emoji === emoji && r.me);
  if (mine) {
    await api('DELETE', path(message, emoji));
    return (message.reactions || [])
      .map((r) => (r.emoji === emoji ? { ...r, count: r.count - 1, me: false } : r))
      .filter((r) => r.count > 0);
  }
  const updated = await api('POST', path(message), { emoji });
  return updated.reactions;
}

/** The chips under a message, or nothing when it has none. */
export function reactionChips(message, onToggle) {
  const reactions = message.reactions || [];
  if (reactions.length === 0 || message.is_deleted) return null;
  return h('div', { class: 'reactions' }, reactions.map((r) => h('button', {
    class: `chip${r.me ? ' me' : ''}`,
    'aria-pressed': r.me ? 'true' : 'false',
    'aria-label': `${r.emoji} ${r.count} ${r.count === 1 ? 'reaction' : 'reactions'}${r.me ? ', including yours' : ''}`,
    onclick: () => onToggle(r.emoji),
  }, `${r.emoji} ${r.count}`)));
}

/** A row of emoji to pick from, shown in place of the button that opened it. */
export function reactionPicker(onPick) {
  return h('div', { class: 'picker', role: 'group', 'aria-label': 'Pick a reaction' },
    CHOICES.map((emoji) => h('button', { class: 'link', 'aria-label': `React with ${emoji}`, onclick: () => onPick(emoji) }, emoji)));
}

/** A message's reactions after a `reaction.added` / `reaction.removed` frame. Frames carry
 * the new count and who reacted; `me` changes only when the reader did it (another tab). */
export function applyReactionFrame(message, frame, myId) {
  const reactions = [...(message.reactions || [])];
  const at = reactions.findIndex((r) => r.emoji === frame.emoji);
  const mine = frame.user_id === myId ? frame.type === 'reaction.added' : undefined;
  if (at === -1) {
    if (frame.count > 0) reactions.push({ emoji: frame.emoji, count: frame.count, me: mine ?? false });
  } else if (frame.count <= 0) {
    reactions.splice(at, 1);
  } else {
    reactions[at] = { ...reactions[at], count: frame.count, me: mine ?? reactions[at].me };
  }
  return reactions;
}

/** Runs a reaction change and reports failures. */
export async function react(message, emoji, apply) {
  try {
    apply(await toggleReaction(message, emoji));
  } catch (error) {
    failed(error);
  }
}
