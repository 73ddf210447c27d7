// Attachments in messages. A message's `download_url` needs the Bearer token, which an <img>
// cannot send, so the client asks the API for the upload's fresh short-lived URL and shows that.

import { api } from './api.js';
import { fileSize, h } from './dom.js';
import { failed } from './app.js';

async function freshUrl(file) {
  const upload = await api('GET', `/api/uploads/${file.id}/`);
  return upload.download_url;
}

/** An image preview, or a download button for other files. */
export function fileView(file) {
  const label = `${file.filename} (${fileSize(file.size)})`;
  if (file.content_type?.startsWith('image/')) {
    const img = h('img', { class: 'preview', alt: file.filename, loading: 'lazy', width: 320, height: 200 });
    freshUrl(file).then((url) => { img.src = url; }, () => { img.alt = `${file.filename} (unavailable)`; });
    return h('figure', { class: 'file' }, img, h('figcaption', {}, label));
  }
  return h('div', { class: 'file' }, h('button', {
    class: 'link',
    onclick: async () => {
      try {
        window.open(await freshUrl(file), '_blank', 'noopener');
      } catch (error) {
        failed(error);
      }
    },
  }, `⤓ ${label}`));
}
