// Emoji reactions on a message: chips with counts (pressed when the reader reacted), a small
// picker, and the live frames that change them.
//
// Order: each change numbers the message's reactions (`reactions_version` on the message,
// `version` on the frame), and frames of one message may come in another order than their
// changes were made (two people reacting at once). A message keeps the version its whole list
// is from, and per emoji the version of the last frame applied to it; a frame no newer than
// those is older news and changes nothing.

import { api } from './api.js';
import { h } from './dom.js';
import { failed } from './app.js';

/** The picker's choices; any Unicode emoji or :shortcode: works through the API. */
const CHOICES = ['👍', '❤️', '😂', '🎉', '👀', '🙏', '✅', '🚀'];

function path(message, emoji) {
  const base = `/api/rooms/${message.room}/messages/${message.id}/reactions/`;
  return emoji ? `${base}${encodeURIComponent(emoji)}/` : base;
}

/** Adds or takes back the reader's `emoji`. Resolves with the message's new reactions and the
 * version they are from, or for a removal (which answers nothing) with the emoji and the
 * version it stood at when clicked: `withoutMine` computes the rest then. */
export async function toggleReaction(message, emoji) {
  const mine = (message.reactions || []).some((r) => r.emoji === emoji && r.me);
  if (mine) {
    await api('DELETE', path(message, emoji));
    return { removed: emoji, since: message.emojiVersions?.[emoji] || 0 };
  }
  const updated = await api('POST', path(message), { emoji });
  return { reactions: updated.reactions, version: updated.reactions_version ?? 0 };
}

/** `message`'s reactions with the reader's `emoji` taken off, or null when a frame about that
 * emoji came since `since` (the click): it said more than this can work out. */
export function withoutMine(message, emoji, since) {
  if ((message.emojiVersions?.[emoji] || 0) !== since) return null;
  return (message.reactions || [])
    .map((r) => (r.emoji === emoji && r.me ? { ...r, count: r.count - 1, me: false } : r))
    .filter((r) => r.count > 0);
}

/** The reaction fields of `known` once a whole list of reactions (`incoming`, as the server had
 * them at `version`) arrives: nothing changes if `known` holds a newer list, and an emoji a
 * newer frame changed since keeps what that frame said. */
export function mergeReactions(known, incoming, version) {
  if (!known || (known.reactions_version || 0) > version) {
    return known
      ? { reactions: known.reactions, reactions_version: known.reactions_version, emojiVersions: known.emojiVersions }
      : { reactions: incoming, reactions_version: version, emojiVersions: {} };
  }
  const later = Object.entries(known.emojiVersions || {}).filter(([, v]) => v > version);
  const newer = new Set(later.map(([emoji]) => emoji));
  return {
    reactions: [
      ...incoming.filter((r) => !newer.has(r.emoji)),
      ...(known.reactions || []).filter((r) => newer.has(r.emoji)),
    ],
    reactions_version: version,
    emojiVersions: Object.fromEntries(later),
  };
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

/** A message's reaction fields after a `reaction.added` / `reaction.removed` frame, or null
 * when the frame is older news. Frames carry the new count and who reacted; `me` changes only
 * when the reader did it (another tab). */
export function applyReactionFrame(message, frame, myId) {
  const since = Math.max(message.reactions_version || 0, message.emojiVersions?.[frame.emoji] || 0);
  if (frame.version && frame.version <= since) return null;
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
  const emojiVersions = { ...message.emojiVersions, [frame.emoji]: frame.version || 0 };
  return { reactions, emojiVersions };
}

/** Runs a reaction change and reports failures. */
export async function react(message, emoji, apply) {
  try {
    apply(await toggleReaction(message, emoji));
  } catch (error) {
    failed(error);
  }
}
