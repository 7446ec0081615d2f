// Ratings: look a LeetCode problem up by its slug (a pending answer is asked again by itself,
// after the server's Retry-After), and the known problems with filters.

function problemCard(p) {
  return el('div', { class: 'card', id: 'problem' },
    el('h2', {}, p.title),
    el('p', {}, el('span', { class: 'big', id: 'rating' }, String(p.rating)), ' rating · ', p.difficulty,
      ` · ${(p.ac_rate * 100).toFixed(1)}% accepted`),
    el('p', { class: 'row' }, p.tags.map((t) => el('a', { class: 'badge', href: `#/ratings?tag=${encodeURIComponent(t.slug)}` }, t.name))),
    el('p', { class: 'muted' }, `Fetched ${when(p.fetched_at)} · `, el('a', { href: `https://leetcode.com/problems/${encodeURIComponent(p.slug)}/`, rel: 'noopener noreferrer' }, 'on LeetCode')));
}

route(/^\/ratings(?:\?(.*))?$/, async ([query]) => {
  const params = new URLSearchParams(query || '');
  const answer = el('div', { id: 'lookup-answer', 'aria-live': 'polite' });
  let retry = null;
  onLeave(() => clearTimeout(retry));
  async function lookUp(slug) {
    clearTimeout(retry);
    const result = await api('GET', `/problems/${encodeURIComponent(slug)}`);
    if (result.status === 202) {
      const wait = result.retryAfter || 2;
      answer.replaceChildren(el('p', { id: 'pending' }, `Asking LeetCode about “${slug}”… trying again in ${wait} s.`));
      retry = setTimeout(() => lookUp(slug), wait * 1000);
    } else if (result.ok) {
      answer.replaceChildren(problemCard(result.data));
    } else {
      answer.replaceChildren(errorText(result));
    }
  }
  const lookup = el('form', { class: 'row', role: 'search', id: 'lookup-form' },
    field('Problem slug', { name: 'slug', required: true, pattern: '[a-z0-9-]{1,100}', placeholder: 'two-sum', value: params.get('slug') || '' }),
    el('button', { type: 'submit' }, 'Look up'));
  lookup.addEventListener('submit', (event) => {
    event.preventDefault();
    lookUp(new FormData(lookup).get('slug').trim().toLowerCase());
  });

  const filters = el('form', { class: 'row', id: 'problem-filters' },
    field('Tag', { name: 'tag', value: params.get('tag') || '', placeholder: 'array' }),
    field('Rating from', { name: 'min_rating', type: 'number', value: params.get('min_rating') || '' }),
    field('to', { name: 'max_rating', type: 'number', value: params.get('max_rating') || '' }),
    el('label', {}, 'Order', el('select', { name: 'sort' },
      [['rating', 'easiest first'], ['-rating', 'hardest first']].map(([v, t]) => el('option', { value: v, selected: v === params.get('sort') }, t)))),
    el('button', { type: 'submit' }, 'Filter'));
  filterTo(filters, '/ratings');
  const table = el('tbody', { id: 'problems' });
  const asked = { limit: '25' };
  for (const key of ['tag', 'min_rating', 'max_rating', 'sort']) if (params.get(key)) asked[key] = params.get(key);
  const more = await pagedInto(table, '/problems', asked, (p) => el('tr', {},
    el('td', {}, el('a', { href: `#/ratings?slug=${encodeURIComponent(p.slug)}` }, p.title)),
    el('td', {}, String(p.rating)), el('td', {}, p.difficulty)), null);
  if (params.get('slug')) lookUp(params.get('slug'));
  return el('section', {}, el('h1', {}, 'Problem ratings'),
    el('p', { class: 'muted' }, 'How hard a LeetCode problem is, from how many people solve it.'),
    lookup, answer,
    el('h2', {}, 'Known problems'), filters,
    el('table', {}, el('thead', {}, el('tr', {}, ['Problem', 'Rating', 'Difficulty'].map((h) => el('th', { scope: 'col' }, h)))), table), more);
});
