// Search over the messages of the organization's rooms the reader sits in: the API's query
// syntax ("phrases", -exclude, prefix*), results ranked with a highlighted snippet.

import { api, nextPath } from './api.js';
import { h, replace } from './dom.js';
import { failed, paneHeader, state } from './app.js';
import { resultItem } from './mentions.js';
import { enableNextPage, firstLink, showNextPage } from './listview.js';

/** The snippet's text with its <mark>s, rebuilt from parsed HTML so nothing else can pass. */
function snippetNodes(html) {
  const parsed = new DOMParser().parseFromString(`<body>${html}</body>`, 'text/html');
  return [...parsed.body.childNodes].map((node) => (node.nodeName === 'MARK'
    ? h('mark', {}, node.textContent)
    : node.textContent));
}

export class SearchView {
  constructor(query) {
    this.query = query;
    this.list = h('ol', { class: 'results', 'aria-live': 'polite' });
    this.more = h('div', { class: 'history-top' });
    this.input = h('input', { type: 'search', value: query, 'aria-label': 'Search messages', placeholder: 'Search: words, "a phrase", -without, pre*' });
    const form = h('form', { class: 'search-form', role: 'search' }, this.input, h('button', { type: 'submit' }, 'Search'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const q = this.input.value.trim();
      if (q) location.hash = `#/org/${state.org.id}/search/${encodeURIComponent(q)}`;
    });
    this.element = h('section', { class: 'room', 'aria-label': 'Search' },
      paneHeader('Search'),
      form,
      h('div', { class: 'scroller' }, this.list, this.more));
  }

  async mounted() {
    if (!this.query) return this.input.focus();
    replace(this.list);
    await this.load(`/api/orgs/${state.org.id}/search/?q=${encodeURIComponent(this.query)}&limit=20`);
  }

  async load(path) {
    try {
      const page = await api('GET', path);
      if (page.results.length === 0 && !this.list.children.length) {
        replace(this.list, h('li', { class: 'empty' }, `Nothing found for ${this.query}.`));
      }
      const items = page.results.map((r) => resultItem(r.message, snippetNodes(r.snippet)));
      this.list.append(...items);
      showNextPage(this.more, 'More results', page.next && (() => this.load(nextPath(page.next))), firstLink(items));
    } catch (error) {
      enableNextPage(this.more);
      if (error.status === 400) replace(this.list, h('li', { class: 'error' }, error.fullMessage));
      else failed(error);
    }
  }

  destroy() {}
}
