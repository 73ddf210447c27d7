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
      const items = page.results.map((result) => this.item(result));
      this.list.append(...items);
      showNextPage(this.more, 'Older', page.next && (() => this.load(nextPath(page.next))), firstLink(items));
    } catch (error) {
      enableNextPage(this.more);
      failed(error);
    }
  }

  destroy() {}
}

/** The first link among `items` (where a reader paging on with the keyboard goes on from). */
export function firstLink(items) {
  return items.map((item) => item.querySelector('a')).find(Boolean) ?? null;
}

/** Shows in `box` the button that loads the next page with `load` (none without it): one page
 * per press (a double click adds it once), saying "Loading…" meanwhile. The button stays the
 * same element from page to page, so the keyboard's focus stays on it (a button replaced, or
 * disabled, while focused dropped the focus to the top of the page); when the pages end, the
 * focus goes to `after` (an element to continue from), if given. */
export function showNextPage(box, label, load, after = null) {
  let button = box.querySelector('button.next-page');
  if (!load) {
    const focused = button && button === document.activeElement;
    replace(box, '');
    if (focused) after?.focus();
    return;
  }
  if (!button) {
    button = h('button', { class: 'link next-page' });
    replace(box, button);
  }
  button.dataset.label = label;
  button.textContent = label;
  button.removeAttribute('aria-busy');
  button.onclick = () => {
    if (button.getAttribute('aria-busy') === 'true') return;
    button.setAttribute('aria-busy', 'true');
    button.textContent = 'Loading…';
    load();
  };
}

/** After a page failed to load: the button in `box`, if any, may be pressed again. */
export function enableNextPage(box) {
  const button = box.querySelector('button.next-page');
  if (!button) return;
  button.removeAttribute('aria-busy');
  button.textContent = button.dataset.label;
}
