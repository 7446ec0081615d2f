// Social: the feed (top-liked and hot), an article with likes and collects, the editor (draft,
// publish, withdraw), and an author's articles.

function rankingList(items, id) {
  return items.length
    ? el('ol', { class: 'list', id }, items.map((a) => el('li', {}, el('a', { href: `#/articles/${a.id}` }, a.title),
      el('span', { class: 'muted' }, ` · ${a.like_count} like${a.like_count === 1 ? '' : 's'}`))))
    : el('p', { class: 'muted' }, 'Nothing yet.');
}

route(/^\/social$/, async () => {
  const [top, hot] = await Promise.all([api('GET', '/articles/top-liked?n=20'), api('GET', '/articles/hot?n=20')]);
  return el('section', {}, el('h1', {}, 'Social'),
    me ? el('p', { class: 'row' }, el('a', { class: 'button', href: '#/articles/new' }, 'Write an article'),
      el('a', { href: `#/users/${me.id}/articles` }, 'My articles')) : '',
    el('div', { class: 'grid' },
      el('div', { class: 'card' }, el('h2', {}, 'Hot this week'), hot.ok ? rankingList(hot.data.items, 'hot') : errorText(hot)),
      el('div', { class: 'card' }, el('h2', {}, 'Most liked'), top.ok ? rankingList(top.data.items, 'top-liked') : errorText(top))));
});

route(/^\/articles\/([0-9a-f-]{36})$/, async ([id]) => {
  const result = await api('GET', `/articles/${id}`);
  if (!result.ok) return el('section', {}, el('h1', {}, 'Article'), errorText(result));
  const a = result.data;
  const likes = el('span', { id: 'like-count' }, String(a.like_count));
  const collects = el('span', { id: 'collect-count' }, String(a.collect_count));
  function toggle(kind, on, button, counter, countKey) {
    return async () => {
      if (!me) { go(`/login?next=/articles/${id}`); return; }
      const now = button.getAttribute('aria-pressed') !== 'true';
      const done = await api(now ? 'PUT' : 'DELETE', `/articles/${id}/${kind}`);
      if (!done.ok) { toast(problem(done)); return; }
      button.setAttribute('aria-pressed', String(now));
      counter.textContent = String(done.data[countKey]);
    };
  }
  const like = el('button', { type: 'button', class: 'secondary', id: 'like', 'aria-pressed': String(a.liked) }, '♥ Like ', likes);
  like.addEventListener('click', toggle('like', a.liked, like, likes, 'like_count'));
  const collect = el('button', { type: 'button', class: 'secondary', id: 'collect', 'aria-pressed': String(a.collected) }, '★ Collect ', collects);
  collect.addEventListener('click', toggle('collect', a.collected, collect, collects, 'collect_count'));
  const own = me && me.id === a.author.id;
  return el('section', {},
    el('h1', {}, a.title),
    el('p', { class: 'muted' }, 'By ', el('a', { href: `#/users/${a.author.id}/articles` }, a.author.nickname),
      ` · ${a.status === 'published' ? 'published ' + when(a.published_at) : a.status} · ${a.read_count} reads`),
    el('article', { class: 'card body', id: 'content' }, a.content),
    el('div', { class: 'row' }, like, collect, own ? el('a', { class: 'button', href: `#/articles/${id}/edit` }, 'Edit') : ''));
});

async function editor(id) {
  if (!me) return signInFirst('write');
  let article = null;
  if (id) {
    const result = await api('GET', `/articles/${id}`);
    if (!result.ok) return el('section', {}, el('h1', {}, 'Edit'), errorText(result));
    article = result.data;
  }
  const state = el('p', { id: 'article-status', 'aria-live': 'polite' });
  const actions = el('div', { class: 'row' });
  function showStatus() {
    state.textContent = article ? `Status: ${article.status}` : 'Not saved yet';
    actions.replaceChildren();
    if (!article) return;
    const change = (to, label) => el('button', { type: 'button', class: 'secondary', id: to, onclick: async () => {
      const done = await api('POST', `/articles/${article.id}/${to}`);
      if (!done.ok) { toast(problem(done)); return; }
      article = done.data;
      showStatus();
      toast(to === 'publish' ? 'Published' : 'Withdrawn: only you can see it');
    } }, label);
    actions.append(article.status === 'published' ? change('withdraw', 'Withdraw') : change('publish', 'Publish'),
      el('a', { href: `#/articles/${article.id}` }, 'View'));
  }
  showStatus();
  const edit = form({ id: 'article-form' }, [
    field('Title', { name: 'title', required: true, maxlength: 200, value: article ? article.title : '' }),
    el('label', {}, 'Text', el('textarea', { name: 'content', maxlength: 100000 }, article ? article.content : '')),
  ], article ? 'Save' : 'Save as draft', async (v) => {
    const saved = article
      ? await api('PUT', `/articles/${article.id}`, v)
      : await api('POST', '/articles', v);
    if (!saved.ok) return saved;
    if (!article) history.replaceState(null, '', `#/articles/${saved.data.id}/edit`);
    article = saved.data;
    showStatus();
    toast('Saved');
  });
  return el('section', {}, el('h1', {}, article ? 'Edit your article' : 'Write an article'), edit, state, actions);
}

route(/^\/articles\/new$/, () => editor(null));
route(/^\/articles\/([0-9a-f-]{36})\/edit$/, ([id]) => editor(id));

route(/^\/users\/([0-9a-f-]{36})\/articles$/, async ([id]) => {
  const list = el('ul', { class: 'list', id: 'author-articles' });
  const more = await pagedInto(list, `/users/${id}/articles`, { limit: '20' }, (a) => el('li', {},
    el('a', { href: `#/articles/${a.id}` }, a.title), ' ', el('span', { class: 'badge' }, a.status),
    el('span', { class: 'muted' }, ` · ${a.like_count} likes · ${a.read_count} reads`)), 'No articles yet.');
  return el('section', {}, el('h1', {}, me && me.id === id ? 'My articles' : 'Articles'), list, more);
});
