// A main pane that shows one list read from the API, page by page: the Mentions page,
// followed threads.

import { api, nextPath } from './api.js';
import { h, replace } from './dom.js';
import { failed, paneHeader } from './app.js';

export class ListView {
  /** `path` is the first page's API path (a page is `{results, next}`); `item` draws one
   * result; `empty` is the sentence for no result at all. */
  constructor(title, path, item, empty) {
    this.path = path;
    this.item = item;
    this.empty = empty;
    this.list = h('ol', { class: 'results' });
    this.more = h('div', { class: 'history-top' });
    this.element = h('section', { class: 'room', 'aria-label': title },
      paneHeader(title),
      h('div', { class: 'scroller' }, this.list, this.more));
  }

  async mounted() {
    await this.load(this.path);
  }

  async load(path) {
    try {
      const page = await api('GET', path);
      if (page.results.length === 0 && !this.list.children.length) {
        replace(this.list, h('li', { class: 'empty' }, this.empty));
      }
      this.list.append(...page.results.map((result) => this.item(result)));
      replace(this.more, page.next ? h('button', {
        class: 'link',
        onclick: (event) => {
          event.currentTarget.disabled = true; // One page at a time: a double click adds it once.
          this.load(nextPath(page.next));
        },
      }, 'Older') : '');
    } catch (error) {
      // The button stays for another try.
      const more = this.more.querySelector('button');
      if (more) more.disabled = false;
      failed(error);
    }
  }

  destroy() {}
}
