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
      replace(this.more, page.next ? nextPageButton('Older', () => this.load(nextPath(page.next))) : '');
    } catch (error) {
      enableNextPage(this.more);
      failed(error);
    }
  }

  destroy() {}
}

/** A button that loads the next page: one page per click (a double click adds it once). */
export function nextPageButton(label, load) {
  return h('button', {
    class: 'link',
    onclick: (event) => {
      event.currentTarget.disabled = true;
      load();
    },
  }, label);
}

/** After a page failed to load: the button in `box`, if any, may be pressed again. */
export function enableNextPage(box) {
  const button = box.querySelector('button');
  if (button) button.disabled = false;
}
