// Editing a message where it is drawn: its body becomes a text box and its toolbar Save and
// Cancel. Enter saves (Shift+Enter is a new line), Escape cancels.

import { h } from './dom.js';

/** Turns `node`'s body into a box holding `body`. `save(text)` resolves to whether the text
 * was stored (if not, the box stays open); `done()` draws the message again, after a save or a
 * cancel. */
export function editInPlace(node, body, { save, done }) {
  const box = h('textarea', { class: 'edit', 'aria-label': 'Edit message', maxlength: 4000 });
  box.value = body;
  const saveNow = async () => {
    if (await save(box.value)) done();
  };
  box.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') done();
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      saveNow();
    }
  });
  node.querySelector('.body')?.replaceWith(box);
  node.querySelector('.msg-actions')?.replaceChildren(
    h('button', { class: 'link', onclick: saveNow }, 'Save'),
    h('button', { class: 'link', onclick: done }, 'Cancel'));
  box.focus();
}
