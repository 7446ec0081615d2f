// Deals: stores near a place (the browser's location or typed coordinates) with distance, a
// store and its live deals, a deal with its order button, points, and the owner's dashboard
// where orders arrive live over SSE.

const CATEGORIES = ['snack', 'western', 'japanese', 'korean', 'chicken', 'chinese', 'meat', 'dessert', 'convenience', 'other'];
/** Where the search starts before the browser tells us better: the demo city's centre. */
const DEFAULT_PLACE = { lat: 37.5663, lng: 126.9779 };

function distance(metres) {
  return metres < 1000 ? `${Math.round(metres)} m` : `${(metres / 1000).toFixed(1)} km`;
}

route(/^\/deals(?:\?(.*))?$/, async ([query]) => {
  const params = new URLSearchParams(query || '');
  const lat = params.get('lat') || String(DEFAULT_PLACE.lat);
  const lng = params.get('lng') || String(DEFAULT_PLACE.lng);
  const radius = params.get('radius_m') || '1000';
  const category = params.get('category') || '';
  const latInput = el('input', { name: 'lat', type: 'number', step: 'any', min: -90, max: 90, value: lat, required: true });
  const lngInput = el('input', { name: 'lng', type: 'number', step: 'any', min: -180, max: 180, value: lng, required: true });
  const search = el('form', { class: 'row', role: 'search', id: 'nearby-search' },
    el('label', {}, 'Latitude', latInput), el('label', {}, 'Longitude', lngInput),
    field('Within (m)', { name: 'radius_m', type: 'number', min: 1, max: 20000, value: radius }),
    el('label', {}, 'Category', el('select', { name: 'category' },
      ['', ...CATEGORIES].map((c) => el('option', { value: c, selected: c === category }, c || 'any')))),
    el('button', { type: 'button', class: 'secondary', onclick: () => {
      if (!navigator.geolocation) { toast('This browser cannot tell where you are.'); return; }
      navigator.geolocation.getCurrentPosition((position) => {
        latInput.value = position.coords.latitude.toFixed(6);
        lngInput.value = position.coords.longitude.toFixed(6);
        search.requestSubmit();
      }, () => toast('Your location is not available; type a place instead.'));
    } }, 'Use my location'),
    el('button', { type: 'submit' }, 'Find stores'));
  filterTo(search, '/deals');
  const list = el('ul', { class: 'list', id: 'stores' });
  const asked = { lat, lng, radius_m: radius, limit: '20' };
  if (category) asked.category = category;
  const more = await pagedInto(list, '/stores/nearby', asked, (s) => el('li', {},
    el('a', { href: `#/stores/${s.id}` }, s.name), ' ', el('span', { class: 'badge' }, s.category),
    el('div', { class: 'muted' }, `${distance(s.distance_m)} away · ${s.active_deals} live deal${s.active_deals === 1 ? '' : 's'} · ${s.address}`)),
  'No stores within that distance.');
  return el('section', {}, el('h1', {}, 'Deals near you'),
    me ? el('p', { class: 'row' }, el('a', { href: '#/deals/orders' }, 'My orders'), el('a', { href: '#/deals/points' }, 'My points'),
      el('a', { href: '#/stores/new' }, 'Open a store')) : '',
    search, el('h2', {}, 'Nearest first'), list, more);
});

route(/^\/deals\/orders$/, async () => {
  if (!me) return signInFirst('see your orders');
  const list = el('ul', { class: 'list', id: 'orders' });
  const more = await pagedInto(list, '/me/orders', { limit: '20' }, (o) => {
    const status = el('span', { class: 'status' }, o.status);
    return el('li', {}, el('a', { href: `#/deals/${o.deal_id}` }, `${o.quantity} × deal`),
      ` for ${money(o.total_price)} points · ${when(o.created_at)} · `, status, ' ',
      o.status === 'confirmed' ? el('button', { type: 'button', class: 'secondary', onclick: async (event) => {
        const cancelled = await api('POST', `/orders/${o.id}/cancel`);
        if (!cancelled.ok) { toast(problem(cancelled)); return; }
        status.textContent = 'cancelled';
        event.target.remove();
        toast('Order cancelled: stock and points returned');
      } }, 'Cancel') : '');
  }, 'No orders yet.');
  return el('section', {}, el('h1', {}, 'My orders'), list, more);
});

route(/^\/deals\/points$/, async () => {
  if (!me) return signInFirst('see your points');
  const balance = el('span', { class: 'big', id: 'points' });
  const result = await api('GET', '/me/points');
  balance.textContent = result.ok ? money(result.data.balance) : '?';
  return el('section', {}, el('h1', {}, 'My points'), el('div', { class: 'card' }, balance,
    form({ id: 'top-up-form' }, [field('Top up by', { name: 'amount', type: 'number', min: 1, max: 1000000, required: true, value: 10000 })],
      'Top up', async (v) => {
        const topped = await api('POST', '/me/points/top-up', { amount: Number(v.amount) });
        if (!topped.ok) return topped;
        balance.textContent = money(topped.data.balance);
        toast('Points added');
      })));
});

route(/^\/stores\/new$/, () => {
  if (!me) return signInFirst('open a store');
  return el('section', {}, el('h1', {}, 'Open a store'), form({ id: 'store-form' }, [
    field('Name', { name: 'name', required: true }),
    el('label', {}, 'Category', el('select', { name: 'category' }, CATEGORIES.map((c) => el('option', { value: c }, c)))),
    el('div', { class: 'row' },
      field('Latitude', { name: 'lat', type: 'number', step: 'any', value: DEFAULT_PLACE.lat, required: true }),
      field('Longitude', { name: 'lng', type: 'number', step: 'any', value: DEFAULT_PLACE.lng, required: true })),
    field('Address', { name: 'address', required: true }),
  ], 'Open', async (v) => {
    const result = await api('POST', '/stores', { ...v, lat: Number(v.lat), lng: Number(v.lng) });
    if (!result.ok) return result;
    go(`/stores/${result.data.id}/dashboard`);
  }));
});

route(/^\/stores\/([0-9a-f-]{36})$/, async ([id]) => {
  const result = await api('GET', `/stores/${id}`);
  if (!result.ok) return el('section', {}, el('h1', {}, 'Store'), errorText(result));
  const store = result.data;
  const favourite = me ? el('div', { class: 'row' },
    el('button', { type: 'button', class: 'secondary', onclick: async () => {
      const done = await api('PUT', `/stores/${id}/favorite`);
      toast(done.ok ? 'Saved: you will hear of its new deals' : problem(done));
    } }, 'Add to favourites'),
    el('button', { type: 'button', class: 'secondary', onclick: async () => {
      const done = await api('DELETE', `/stores/${id}/favorite`);
      toast(done.ok ? 'Removed from favourites' : problem(done));
    } }, 'Remove from favourites')) : '';
  return el('section', {}, el('h1', {}, store.name),
    el('p', { class: 'muted' }, `${store.category} · ${store.address}`),
    me && me.id === store.owner_id ? el('p', {}, el('a', { class: 'button', href: `#/stores/${id}/dashboard` }, 'Owner dashboard')) : '',
    favourite,
    el('h2', {}, 'Live deals'),
    store.deals.length ? el('ul', { class: 'list', id: 'deals' }, store.deals.map((d) => el('li', {},
      el('a', { href: `#/deals/${d.id}` }, d.title),
      el('div', { class: 'muted' }, `${money(d.deal_price)} instead of ${money(d.original_price)} · ${d.remaining} left · until ${when(d.ends_at)}`))))
      : el('p', { class: 'muted' }, 'No live deals right now.'));
});

route(/^\/deals\/([0-9a-f-]{36})$/, async ([id]) => {
  const result = await api('GET', `/deals/${id}`);
  if (!result.ok) return el('section', {}, el('h1', {}, 'Deal'), errorText(result));
  const deal = result.data;
  const remaining = el('strong', { id: 'remaining' }, String(deal.remaining));
  const orders = el('ul', { class: 'list', id: 'my-orders' });
  const order = !me ? el('p', {}, el('a', { href: `#/login?next=/deals/${id}` }, 'Log in'), ' to order.')
    : form({ id: 'order-form' }, [field('Quantity', { name: 'quantity', type: 'number', min: 1, max: deal.per_user_limit, value: 1, required: true })],
      'Order', async (v) => {
        const placed = await api('POST', `/deals/${id}/orders`, { quantity: Number(v.quantity) }, { idempotencyKey: idempotencyKey() });
        if (!placed.ok) {
          const error = placed.data && placed.data.error;
          if (error && error.remaining !== undefined) remaining.textContent = String(error.remaining);
          return placed;
        }
        const o = placed.data.order;
        remaining.textContent = String(placed.data.remaining);
        const item = el('li', {}, `Order of ${o.quantity} for ${money(o.total_price)} points: `, el('span', { class: 'ok' }, o.status),
          ` · ${money(placed.data.points_balance)} points left `,
          el('button', { type: 'button', class: 'secondary', onclick: async () => {
            const cancelled = await api('POST', `/orders/${o.id}/cancel`);
            if (cancelled.ok) { item.replaceChildren(`Order of ${o.quantity}: cancelled, points returned.`); toast('Order cancelled'); }
            else toast(problem(cancelled));
          } }, 'Cancel'));
        orders.prepend(item);
        toast('Ordered: pick it up at the store');
      });
  return el('section', {}, el('h1', {}, deal.title),
    el('p', {}, el('a', { href: `#/stores/${deal.store_id}` }, 'The store')),
    el('div', { class: 'card' },
      el('p', { class: 'big' }, `${money(deal.deal_price)} `, el('s', { class: 'muted' }, money(deal.original_price))),
      el('p', {}, remaining, ` of ${deal.quantity} left · at most ${deal.per_user_limit} per person · ${when(deal.starts_at)} – ${when(deal.ends_at)}`),
      deal.live ? order : el('p', { class: 'muted' }, 'This deal is not live.'),
      me ? el('p', {}, el('a', { href: '#/deals/points' }, 'Top up points')) : ''),
    el('h2', {}, 'Your orders here'), orders);
});

route(/^\/stores\/([0-9a-f-]{36})\/dashboard$/, async ([id]) => {
  if (!me) return signInFirst('run your store');
  const result = await api('GET', `/stores/${id}`);
  if (!result.ok) return el('section', {}, el('h1', {}, 'Owner dashboard'), errorText(result));
  const store = result.data;
  if (store.owner_id !== me.id) return el('section', {}, el('h1', {}, 'Owner dashboard'), el('p', { class: 'error' }, 'Only the owner runs this store.'));
  const rows = el('tbody', { id: 'orders' });
  const seen = new Map();
  function show(o) {
    const row = el('tr', { 'data-order': o.id },
      el('td', {}, when(o.created_at || o.at)), el('td', {}, String(o.quantity)), el('td', {}, money(o.total_price)),
      el('td', { class: 'status' }, o.status),
      el('td', {}, o.status === 'confirmed' ? el('button', { type: 'button', class: 'secondary', onclick: async () => {
        const done = await api('POST', `/orders/${o.id}/pickup`);
        if (done.ok) show({ ...o, status: 'picked_up' }); else toast(problem(done));
      } }, 'Picked up') : ''));
    const old = seen.get(o.id);
    if (old) old.replaceWith(row); else rows.prepend(row);
    seen.set(o.id, row);
  }
  const existing = await api('GET', `/stores/${id}/orders?limit=50`);
  if (existing.ok) existing.data.items.slice().reverse().forEach(show);
  const stream = new EventSource(`${API}/stores/${id}/events`);
  for (const kind of ['order_created', 'order_cancelled']) {
    stream.addEventListener(kind, (event) => {
      show(JSON.parse(event.data));
      if (kind === 'order_created') toast('New order');
    });
  }
  onLeave(() => stream.close());
  const deals = el('ul', { class: 'list' }, store.deals.map((d) => el('li', {}, el('a', { href: `#/deals/${d.id}` }, d.title), ` · ${d.remaining} left`)));
  const now = new Date();
  const local = (date) => new Date(date - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  return el('section', {}, el('h1', {}, `${store.name}: orders`),
    el('p', { class: 'muted' }, 'New orders appear here as they are placed.'),
    el('table', {}, el('thead', {}, el('tr', {}, ['Placed', 'Qty', 'Total', 'Status', ''].map((h) => el('th', { scope: 'col' }, h)))), rows),
    el('h2', {}, 'Live deals'), deals,
    el('h2', {}, 'Post a deal'),
    form({ id: 'deal-form' }, [
      field('Title', { name: 'title', required: true }),
      el('div', { class: 'row' },
        field('Original price', { name: 'original_price', type: 'number', min: 1, required: true }),
        field('Deal price', { name: 'deal_price', type: 'number', min: 0, required: true }),
        field('Quantity', { name: 'quantity', type: 'number', min: 1, max: 10000, required: true, value: 10 })),
      el('div', { class: 'row' },
        field('Starts', { name: 'starts_at', type: 'datetime-local', value: local(now), required: true }),
        field('Ends', { name: 'ends_at', type: 'datetime-local', value: local(new Date(now.getTime() + 3 * 3600000)), required: true })),
    ], 'Post the deal', async (v) => {
      const posted = await api('POST', `/stores/${id}/deals`, {
        title: v.title, original_price: Number(v.original_price), deal_price: Number(v.deal_price),
        quantity: Number(v.quantity), starts_at: new Date(v.starts_at).toISOString(), ends_at: new Date(v.ends_at).toISOString(),
      });
      if (!posted.ok) return posted;
      deals.append(el('li', {}, el('a', { href: `#/deals/${posted.data.id}` }, posted.data.title), ` · ${posted.data.remaining} left`));
      toast('Deal posted');
    }));
});
