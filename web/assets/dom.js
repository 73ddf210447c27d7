// Small DOM helpers. Text always goes in through textContent, never innerHTML, so nothing a
// user typed can become markup.

/** Builds an element: h('button', {class: 'x', onclick: f}, 'Label', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== 'string') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : value);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Formatters are built once: building one per call cost more than drawing the message.
const TIME = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit' });
const WEEKDAY = new Intl.DateTimeFormat([], { weekday: 'short' });
const DAY = new Intl.DateTimeFormat([], { day: 'numeric', month: 'short' });
const FULL = new Intl.DateTimeFormat([], { dateStyle: 'full', timeStyle: 'short' });

/** "14:05" today, "Mon 14:05" this week, "3 Dec 14:05" before. */
export function shortTime(iso) {
  const at = new Date(iso);
  const now = new Date();
  const time = TIME.format(at);
  if (at.toDateString() === now.toDateString()) return time;
  if (now - at < 6 * 864e5) return `${WEEKDAY.format(at)} ${time}`;
  return `${DAY.format(at)} ${time}`;
}

/** The full date and time, for a tooltip. */
export function longTime(iso) {
  return FULL.format(new Date(iso));
}

/** A person's display name: first and last name, or the address. */
export function displayName(person) {
  if (!person) return 'someone';
  const name = [person.first_name, person.last_name].filter(Boolean).join(' ').trim();
  return name || person.email || person.user_email || `user ${person.user_id ?? person.id}`;
}

/** Human file size. */
export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A modal dialog with a form; resolves with the form's values, or null when cancelled. A
 * field with `options` is a choice (`multiple`: several, its value an array). With `submit`,
 * the dialog stays open while it runs (on the values) and resolves with what it returns; what
 * it throws is shown in the dialog, which stays open with what was typed, to correct. */
export function askForm(title, fields, submitLabel = 'Save', submit = null) {
  const opener = document.activeElement;
  return new Promise((resolve) => {
    const error = h('p', { class: 'error', role: 'alert' });
    const inputs = fields.map((field) => {
      const id = `f-${field.name}`;
      const chosen = (value) => (Array.isArray(field.value) ? field.value.includes(value) : value === field.value);
      // A checkbox's value is whether it is ticked; its label follows it.
      if (field.type === 'checkbox') {
        return h('label', { for: id, class: 'check' },
          h('input', { id, name: field.name, type: 'checkbox', checked: Boolean(field.value) }), field.label);
      }
      const control = field.options
        ? h('select', { id, name: field.name, multiple: field.multiple, size: field.multiple ? Math.min(field.options.length, 8) : null },
          field.options.map(([value, label]) => h('option', { value, selected: chosen(value) }, label)))
        : h('input', {
          id, name: field.name, type: field.type || 'text', required: field.required !== false,
          value: field.value || '', placeholder: field.placeholder || '', autocomplete: 'off',
          maxlength: field.maxlength,
        });
      return h('label', { for: id }, field.label, control);
    });
    const dialog = h('dialog', { class: 'dialog', 'aria-label': title });
    const send = h('button', { type: 'submit' }, submitLabel);
    const form = h('form', { method: 'dialog' },
      h('h2', {}, title), inputs, error,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => { if (!send.disabled) dialog.close('cancel'); } }, 'Cancel'),
        send));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      // A second Enter while the first is on its way would send it twice.
      if (send.disabled) return;
      const data = new FormData(form);
      const values = Object.fromEntries(data);
      for (const field of fields) {
        if (field.multiple) values[field.name] = data.getAll(field.name);
        if (field.type === 'checkbox') values[field.name] = data.has(field.name);
      }
      let result = values;
      if (submit) {
        send.disabled = true;
        error.textContent = '';
        try {
          result = await submit(values);
        } catch (problem) {
          error.textContent = problem?.fullMessage || String(problem);
          send.disabled = false;
          return;
        }
      }
      // The focus is back on the opener before the caller goes on: the close event is a task of
      // its own, which may come after what the caller started (a room opened, which takes the
      // focus unless the person moved it meanwhile, and took this for such a move).
      dialog.close('done');
      refocus(opener);
      resolve(result ?? values);
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      // A dialog sent ('done') has had its answer and handed the focus back already.
      if (dialog.returnValue !== 'done') {
        resolve(null);
        refocus(opener);
      }
    });
    // Not while its request is on its way: what it made (a room) would be made unseen.
    dialog.addEventListener('cancel', (event) => { if (send.disabled) event.preventDefault(); });
    dialog.append(form);
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Gives the focus back to what opened a dialog. The browser does so itself, unless that element
 * was drawn anew meanwhile (the sidebar is redrawn as counts and presence change): then to the
 * element that took its place (the same link, or a button of the same text), rather than to
 * the page's body. */
export function refocus(opener) {
  if (!opener || opener === document.body || opener.isConnected) return;
  const key = (el) => el.getAttribute('href') ?? `${el.tagName}:${el.textContent}`;
  const wanted = key(opener);
  const same = [...document.querySelectorAll('a[href], button')].find((el) => key(el) === wanted);
  same?.focus();
}

/** Shows a short notice at the bottom of the screen. */
export function toast(text, kind = 'info') {
  // Kept for the browser tests, which fail on any error shown that they did not provoke.
  if (kind === 'error') (window.chatboardErrors ??= []).push(String(text));
  // Inside the dialog open on top, if one is: a modal dialog hides (and mutes) what is under it.
  const host = [...document.querySelectorAll('dialog[open]')].pop() ?? document.body;
  let box = host.querySelector(':scope > .toasts');
  if (!box) {
    box = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    host.append(box);
  }
  const item = h('div', { class: `toast ${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

/** Copies `input`'s text. Where the page may not (a plain-http origin has no clipboard API, or
 * the browser refused), the text is selected and the person told how. */
export async function copyFrom(input, what) {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard here');
    await navigator.clipboard.writeText(input.value);
    toast(`${what} copied.`);
  } catch {
    input.focus();
    input.select();
    toast(`Press Ctrl+C (⌘C on a Mac) to copy the ${what.toLowerCase()}.`);
  }
}
