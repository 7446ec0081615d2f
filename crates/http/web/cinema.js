// Cinema: now showing with search, the seat map of a screening (pick 1–5 seats side by side in
// one row; seats taken by others appear within seconds), and my reservations with cancel.

const GENRES = ['ACTION', 'ROMANCE', 'HORROR', 'SF', 'COMEDY', 'DRAMA', 'ANIMATION', 'THRILLER'];
/** How often an open seat map asks for the taken seats (the read limit allows 50 a minute). */
const SEAT_REFRESH_MS = 3000;

route(/^\/cinema(?:\?(.*))?$/, async ([query]) => {
  const params = new URLSearchParams(query || '');
  const search = el('form', { class: 'row', role: 'search', id: 'movie-search' },
    field('Title contains', { name: 'title', type: 'search', value: params.get('title') || '' }),
    el('label', {}, 'Genre', el('select', { name: 'genre' },
      ['', ...GENRES].map((g) => el('option', { value: g, selected: g === (params.get('genre') || '') }, g || 'any')))),
    el('button', { type: 'submit' }, 'Search'));
  filterTo(search, '/cinema');
  const wanted = new URLSearchParams();
  for (const key of ['title', 'genre']) if (params.get(key)) wanted.set(key, params.get(key));
  const result = await api('GET', '/movies?' + wanted);
  const movies = !result.ok ? errorText(result)
    : !result.data.items.length ? el('p', { class: 'muted' }, 'Nothing is showing in the next 7 days.')
    : el('ul', { class: 'list', id: 'movies' }, result.data.items.map((movie) => el('li', {},
      el('h2', {}, movie.title), el('p', { class: 'muted' }, `${movie.genre} · ${movie.grade} · ${movie.running_minutes} min`),
      el('ul', { class: 'row list' }, movie.screenings.map((s) => el('li', {},
        el('a', { class: 'button secondary', href: `#/cinema/screenings/${s.id}` }, `${when(s.starts_at)} · ${s.theater.name}`)))))));
  return el('section', {}, el('h1', {}, 'Now showing'),
    me ? el('p', {}, el('a', { href: '#/cinema/reservations' }, 'My reservations')) : '',
    search, movies);
});

route(/^\/cinema\/screenings\/([0-9a-f-]{36})$/, async ([id]) => {
  let picked = [];
  const status = el('div', { 'aria-live': 'polite', id: 'seat-status' });
  const map = el('div', { class: 'seats', id: 'seat-map', role: 'group', 'aria-label': 'Seats' });
  const buttons = new Map();

  function render(seats) {
    if (!buttons.size) {
      map.style.gridTemplateColumns = `auto repeat(${seats.cols}, minmax(2.4rem, auto))`;
      let row = '';
      for (const seat of seats.seats) {
        const letter = seat.code.match(/^[A-Z]+/)[0];
        if (letter !== row) { row = letter; map.append(el('span', { class: 'label' }, letter)); }
        const button = el('button', { type: 'button', class: 'seat', 'data-seat': seat.code, 'aria-pressed': 'false',
          onclick: () => toggle(seat.code) }, seat.code);
        buttons.set(seat.code, button);
        map.append(button);
      }
    }
    for (const seat of seats.seats) {
      const button = buttons.get(seat.code);
      button.disabled = seat.taken;
      button.setAttribute('aria-label', `${seat.code}${seat.taken ? ', taken' : ''}`);
      if (seat.taken && picked.includes(seat.code)) {
        picked = picked.filter((code) => code !== seat.code);
        button.setAttribute('aria-pressed', 'false');
        status.textContent = `${seat.code} was just taken by someone else.`;
      }
    }
    summary();
  }
  function toggle(code) {
    picked = picked.includes(code) ? picked.filter((c) => c !== code) : [...picked, code];
    buttons.get(code).setAttribute('aria-pressed', String(picked.includes(code)));
    summary();
  }
  const reserve = el('button', { type: 'button', id: 'reserve', disabled: true, onclick: async () => {
    reserve.disabled = true;
    const result = await api('POST', '/reservations', { screening_id: id, seats: picked }, { idempotencyKey: idempotencyKey() });
    if (result.ok) {
      status.replaceChildren(el('span', { class: 'ok' }, `Reserved ${result.data.seats.join(', ')}.`));
      picked = [];
      for (const button of buttons.values()) button.setAttribute('aria-pressed', 'false');
    } else {
      status.replaceChildren(errorText(result));
    }
    await refresh();
  } }, 'Reserve');
  function summary() {
    reserve.disabled = !me || picked.length < 1 || picked.length > 5;
    reserve.textContent = picked.length ? `Reserve ${picked.slice().sort().join(', ')}` : 'Reserve';
  }
  async function refresh() {
    const result = await api('GET', `/screenings/${id}/seats`);
    if (result.ok) render(result.data); else status.replaceChildren(errorText(result));
    return result;
  }
  const first = await refresh();
  if (!first.ok) return el('section', {}, el('h1', {}, 'Seats'), errorText(first));
  const timer = setInterval(() => { if (!document.hidden) refresh(); }, SEAT_REFRESH_MS);
  onLeave(() => clearInterval(timer));
  return el('section', {}, el('h1', {}, 'Pick your seats'),
    el('p', { class: 'muted' }, 'Choose 1 to 5 seats side by side in one row. Grey seats are taken.'),
    el('div', { class: 'card hall' }, el('p', { class: 'screen' }, 'SCREEN'), map),
    me ? '' : el('p', {}, el('a', { href: `#/login?next=/cinema/screenings/${id}` }, 'Log in'), ' to reserve.'),
    el('div', { class: 'row' }, reserve), status);
});

route(/^\/cinema\/reservations$/, async () => {
  if (!me) return signInFirst('see your reservations');
  const result = await api('GET', '/me/reservations?limit=100');
  if (!result.ok) return el('section', {}, el('h1', {}, 'My reservations'), errorText(result));
  const list = el('ul', { class: 'list', id: 'reservations' }, result.data.items.map((r) => {
    const item = el('li', {}, `${r.seats.join(', ')} · booked ${when(r.created_at)} `,
      el('a', { href: `#/cinema/screenings/${r.screening_id}` }, 'seat map'), ' ',
      el('button', { type: 'button', class: 'secondary', onclick: async () => {
        const cancelled = await api('DELETE', `/reservations/${r.id}`);
        if (cancelled.ok) { item.remove(); toast('Reservation cancelled'); } else toast(problem(cancelled));
      } }, 'Cancel'));
    return item;
  }));
  return el('section', {}, el('h1', {}, 'My reservations'),
    result.data.items.length ? list : el('p', { class: 'muted' }, 'No reservations yet.'));
});
