// Auctions: search and list, create with images, and the live auction room (bids over SSE,
// the anti-sniping countdown, the winner at the end).

function auctionBadge(status) {
  return el('span', { class: `badge ${status}` }, status);
}

route(/^\/auctions(?:\?(.*))?$/, async ([query]) => {
  const params = new URLSearchParams(query || '');
  const q = params.get('q') || '';
  const status = params.get('status') || '';
  const search = el('form', { class: 'row', role: 'search', id: 'auction-search' },
    field('Title contains', { name: 'q', value: q, type: 'search' }),
    el('label', {}, 'Status', el('select', { name: 'status' },
      ['', 'live', 'upcoming', 'ended'].map((s) => el('option', { value: s, selected: s === status }, s || 'any')))),
    el('button', { type: 'submit' }, 'Search'));
  filterTo(search, '/auctions');
  const list = el('ul', { class: 'list', id: 'auction-list' });
  const asked = { limit: '20' };
  if (q) asked.q = q;
  if (status) asked.status = status;
  const more = await pagedInto(list, '/auctions', asked, (a) => el('li', {},
    el('a', { href: `#/auctions/${a.id}` }, a.title), ' ', auctionBadge(a.status),
    el('div', { class: 'muted' }, `${money(a.current_price)} · ${a.bid_count} bids · ends ${when(a.ends_at)}`)),
  'No auctions match.');
  return el('section', {}, el('h1', {}, 'Auctions'),
    me ? el('p', {}, el('a', { class: 'button', href: '#/auctions/new' }, 'Create an auction')) : '',
    search, el('h2', {}, 'Results'), list, more);
});

route(/^\/auctions\/new$/, () => {
  if (!me) return signInFirst('create an auction');
  const images = [];
  const preview = el('div', { class: 'thumbs' });
  const file = el('input', { type: 'file', accept: 'image/png,image/jpeg,image/webp,image/gif', id: 'auction-image' });
  const upload = el('div', { 'aria-live': 'polite' });
  file.addEventListener('change', async () => {
    if (!file.files.length) return;
    const result = await api('POST', '/images', file.files[0]);
    if (!result.ok) { upload.replaceChildren(errorText(result)); return; }
    images.push(result.data.id);
    upload.replaceChildren(el('p', { class: 'ok' }, 'Image uploaded'));
    preview.append(el('img', { src: result.data.url, alt: 'Uploaded image' }));
    file.value = '';
  });
  return el('section', {}, el('h1', {}, 'Create an auction'), form({ id: 'auction-form' }, [
    field('Title', { name: 'title', required: true, maxlength: 120 }),
    el('label', {}, 'Description', el('textarea', { name: 'description', maxlength: 5000 })),
    el('div', { class: 'row' },
      field('Starting price', { name: 'starting_price', type: 'number', min: 0, value: 100, required: true }),
      field('Minimum increment', { name: 'min_increment', type: 'number', min: 1, value: 10, required: true }),
      field('Runs for (minutes)', { name: 'minutes', type: 'number', min: 1, max: 43200, value: 60, required: true }),
      field('Late bids extend by (s)', { name: 'extend_seconds', type: 'number', min: 0, max: 600, value: 30 })),
    el('label', {}, 'Images (PNG, JPEG, WebP or GIF, up to 5 MiB)', file), upload, preview,
  ], 'Create', async (v) => {
    const ends = new Date(Date.now() + Number(v.minutes) * 60000).toISOString();
    const result = await api('POST', '/auctions', {
      title: v.title, description: v.description,
      starting_price: Number(v.starting_price), min_increment: Number(v.min_increment),
      extend_seconds: Number(v.extend_seconds || 0), ends_at: ends, image_ids: images,
    });
    if (!result.ok) return result;
    go(`/auctions/${result.data.id}`);
  }));
});

route(/^\/auctions\/([0-9a-f-]{36})$/, async ([id]) => {
  const result = await api('GET', `/auctions/${id}`);
  if (!result.ok) return el('section', {}, el('h1', {}, 'Auction'), errorText(result));
  const auction = result.data;
  const price = el('span', { class: 'big', id: 'price' }, money(auction.current_price));
  const leader = el('span', { id: 'leader' });
  const count = el('span', { id: 'bid-count' });
  const clock = el('span', { id: 'countdown', 'aria-live': 'off' });
  const state = el('span', { id: 'auction-status' });
  const outcome = el('p', { id: 'outcome', 'aria-live': 'polite' });
  const bids = el('ol', { class: 'list', id: 'bids', reversed: true });
  const amount = el('input', { name: 'amount', type: 'number', required: true, id: 'bid-amount' });

  function show() {
    price.textContent = money(auction.current_price);
    leader.textContent = auction.high_bidder ? auction.high_bidder.nickname : 'no bids yet';
    count.textContent = String(auction.bid_count);
    state.replaceChildren(auctionBadge(auction.status));
    const next = auction.high_bidder ? auction.current_price + auction.min_increment : auction.starting_price;
    amount.min = String(next);
    if (!amount.value || Number(amount.value) < next) amount.value = String(next);
    if (auction.status === 'ended' || auction.winner) {
      outcome.textContent = auction.winner
        ? `Sold to ${auction.winner.nickname} for ${money(auction.current_price)}.`
        : 'Ended without bids.';
    }
  }
  function tick() {
    if (auction.status === 'ended') { clock.textContent = 'ended'; return; }
    const startsIn = timeLeft(auction.starts_at);
    if (startsIn) { clock.textContent = `starts in ${startsIn}`; return; }
    if (auction.status === 'upcoming') auction.status = 'live';
    clock.textContent = timeLeft(auction.ends_at) || 'closing…';
  }
  function addBid(bid) {
    bids.prepend(el('li', {}, el('strong', {}, money(bid.amount)), ` by ${bid.bidder.nickname} · #${bid.seq} · ${when(bid.placed_at)}`));
  }

  const history = await api('GET', `/auctions/${id}/bids?limit=20`);
  let lastSeq = 0;
  if (history.ok) {
    for (const bid of history.data.items.slice().reverse()) { addBid(bid); lastSeq = Math.max(lastSeq, bid.seq); }
  }
  const stream = new EventSource(`${API}/auctions/${id}/events?after_seq=${lastSeq}`);
  stream.addEventListener('bid', (event) => {
    const bid = JSON.parse(event.data);
    if (bid.seq <= lastSeq) return;
    lastSeq = bid.seq;
    auction.current_price = bid.current_price;
    auction.ends_at = bid.ends_at;
    auction.high_bidder = bid.bidder;
    auction.bid_count = Math.max(auction.bid_count + 1, bid.seq);
    addBid(bid);
    show();
  });
  stream.addEventListener('extended', (event) => {
    auction.ends_at = JSON.parse(event.data).ends_at;
    toast('A late bid extended the auction');
  });
  stream.addEventListener('closed', (event) => {
    const closed = JSON.parse(event.data);
    auction.status = 'ended';
    auction.winner = closed.winner;
    if (closed.final_price !== undefined) auction.current_price = closed.final_price;
    show();
    tick();
  });
  const timer = setInterval(tick, 1000);
  onLeave(() => { stream.close(); clearInterval(timer); });

  const own = me && me.id === auction.seller.id;
  const bidForm = !me ? el('p', {}, el('a', { href: `#/login?next=/auctions/${id}` }, 'Log in'), ' to bid.')
    : own ? el('p', { class: 'muted' }, 'This is your auction.')
    : form({ id: 'bid-form', 'aria-label': 'Place a bid' }, [el('label', {}, 'Your bid', amount)], 'Bid', async (v) => {
      const placed = await api('POST', `/auctions/${id}/bids`, { amount: Number(v.amount) }, { idempotencyKey: idempotencyKey() });
      if (!placed.ok) {
        const error = placed.data && placed.data.error;
        if (error && error.min_amount) amount.value = String(error.min_amount);
        return placed;
      }
      toast('Bid placed');
    });
  show();
  tick();
  return el('section', {},
    el('h1', {}, auction.title),
    el('p', { class: 'muted' }, 'Sold by ', auction.seller.nickname, ' · ', state),
    auction.images.length ? el('div', { class: 'thumbs' }, auction.images.map((img) => el('img', { src: img.url, alt: `Image of ${auction.title}` }))) : '',
    el('div', { class: 'grid' },
      el('div', { class: 'card' },
        el('div', {}, 'Current price'), price,
        el('div', {}, 'Highest bidder: ', leader),
        el('div', {}, 'Bids: ', count),
        el('div', {}, 'Time left: ', el('strong', {}, clock),
          auction.extend_seconds ? el('span', { class: 'muted' }, ` (a bid in the last ${auction.extend_seconds} s extends it)`) : ''),
        outcome, bidForm),
      el('div', { class: 'card' }, el('h2', {}, 'Bids'), bids)),
    auction.description ? el('div', { class: 'card' }, el('h2', {}, 'Description'), el('article', { class: 'body' }, auction.description)) : '');
});
