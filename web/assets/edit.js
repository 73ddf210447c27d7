// Editing a message where it is drawn: its body becomes a text box and its toolbar Save and
// Cancel. Enter saves (Shift+Enter is a new line), Escape cancels.

import { h } from './dom.js';

/** Turns `node`'s body into a box holding `body`. `save(text)` stores the text and ends the
 * edit (or reports a failure and leaves the box open); `cancel()` ends it unchanged. */
export function editInPlace(node, body, { save, cancel }) {
  const box = h('textarea', { class: 'edit', 'aria-label': 'Edit message' });
  box.value = body;
  const saveNow = () => save(box.value);
  box.addEventListener('keydown', (event) => {
    // Enter and Escape while an input method composes belong to it (picking a character).
    if (event.isComposing) return;
    if (event.key === 'Escape') cancel();
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      saveNow();
    }
  });
  node.querySelector('.body')?.replaceWith(box);
  node.querySelector('.msg-actions')?.replaceChildren(
    h('button', { class: 'link', onclick: saveNow }, 'Save'),
    h('button', { class: 'link', onclick: cancel }, 'Cancel'));
  box.focus();
}
