// A main pane that shows one list read from the API: the Mentions page, followed threads.

import { h, replace } from './dom.js';
import { failed, paneHeader } from './app.js';

export class ListView {
  /** `load` resolves with the list's items (elements), or [] for `empty`'s sentence. */
  constructor(title, load, empty) {
    this.load = load;
    this.empty = empty;
    this.list = h('ol', { class: 'results' });
    this.element = h('section', { class: 'room', 'aria-label': title },
      paneHeader(title),
      h('div', { class: 'scroller' }, this.list));
  }

  async mounted() {
    try {
      const items = await this.load();
      replace(this.list, items.length ? items : h('li', { class: 'empty' }, this.empty));
    } catch (error) {
      failed(error);
    }
  }

  destroy() {}
}
