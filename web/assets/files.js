// Attachments in messages. A message's `download_url` needs the Bearer token, which an <img>
// cannot send, so the client asks the API for the upload's fresh short-lived URL and shows that.

import { api } from './api.js';
import { fileSize, h, toast } from './dom.js';
import { failed } from './app.js';

// The URLs work five minutes: one is asked for once per file and kept a little less than that,
// so redrawing a message (a reaction, an edit, names loaded) asks nothing of the API, whose
// per-user request limit a room of images would otherwise use up.
const FRESH_FOR_MS = 4 * 60 * 1000;
const urls = new Map();

function freshUrl(file, again = false) {
  const known = urls.get(file.id);
  if (!again && known && Date.now() - known.at < FRESH_FOR_MS) return known.url;
  const url = api('GET', `/api/uploads/${file.id}/`).then((upload) => upload.download_url);
  forgetLapsed();
  urls.set(file.id, { at: Date.now(), url });
  url.catch(() => urls.delete(file.id));
  return url;
}

/** Drops the URLs too old to use, once there are a few: a tab open all day sees many files. */
function forgetLapsed() {
  if (urls.size < 256) return;
  const now = Date.now();
  for (const [id, known] of urls) {
    if (now - known.at >= FRESH_FOR_MS) urls.delete(id);
  }
}

// Images ask for their URL only when they come near the view: a page of a hundred images
// scrolled past costs nothing, and an image shown long after its page loaded gets a URL that
// still works.
const nearView = typeof IntersectionObserver === 'function'
  ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      nearView.unobserve(entry.target);
      entry.target.dispatchEvent(new Event('near'));
    }
  }, { rootMargin: '600px' })
  : null;

/** An image preview, or a download button for other files. */
export function fileView(file) {
  const label = `${file.filename} (${fileSize(file.size)})`;
  if (file.content_type?.startsWith('image/')) {
    const img = h('img', { class: 'preview', alt: file.filename, width: 320, height: 200 });
    const unavailable = () => { img.alt = `${file.filename} (unavailable)`; };
    // No URL (the upload expired) or none to be had (404): unavailable, rather than a request
    // for `/null`. A refusal that passes (a rate limit, a busy server, the network) is asked
    // again later, a few times, while the image is on the page.
    let refusals = 0;
    const show = (again) => freshUrl(file, again).then(
      (url) => { if (url) img.src = url; else unavailable(); },
      (error) => {
        const passing = error?.status === 0 || error?.status === 429 || error?.status >= 500;
        if (!passing || refusals >= 5) return unavailable();
        refusals += 1;
        const wait = Math.max(2000 * refusals, (Number(error.retryAfter) || 0) * 1000);
        setTimeout(() => { if (img.isConnected) show(again); }, wait);
      },
    );
    // A URL that lapsed before the image loaded: ask once more.
    let retried = false;
    img.addEventListener('error', () => {
      if (retried) return;
      retried = true;
      show(true);
    });
    if (nearView) {
      img.addEventListener('near', () => show(false), { once: true });
      nearView.observe(img);
    } else {
      show(false);
    }
    return h('figure', { class: 'file' }, img, h('figcaption', {}, label));
  }
  return h('div', { class: 'file' }, h('button', {
    class: 'link',
    onclick: async () => {
      try {
        // The file comes as an attachment: going to its URL saves it and leaves the page as it
        // is. (A window opened once the URL had come, seconds later on a busy server, no longer
        // counted as the user's click and was blocked as a pop-up, without a word.)
        const url = await freshUrl(file);
        if (url) window.location.assign(url);
        else toast(`${file.filename} has expired: files are kept for a limited time.`, 'error');
      } catch (error) {
        failed(error);
      }
    },
  }, `⤓ ${label}`));
}

/** Stops watching the images under `node`, drawn anew or taken off the page: the observer would
 * otherwise keep them, and everything they hang from, alive for as long as the tab is open. */
export function releaseFiles(node) {
  if (!nearView || !node) return;
  for (const img of node.querySelectorAll('img.preview')) nearView.unobserve(img);
}
