// app.js: pubpresence's "who is online" page (GET /; docs/http.md).
//
// It follows GET /api/v1/events (Server-Sent Events) with fetch() and a
// streaming reader, because EventSource cannot send the Authorization
// header, and keeps the users and their connections up to date. Plain
// JavaScript, no build step; served with a CSP that allows only this
// origin's scripts and styles (no inline script, no inline style).
//
// Stable hooks for tests and scripts (kept across versions):
//   #token-form        the token form (hidden while a token is in use)
//   #token             its password input; #token-error its message
//                      (hidden when there is none)
//   #forget            button: forget the token, stop the stream
//   #view              the users' section (hidden while the form is shown;
//                      data-stale while the stream is not connected)
//   #filter            the filter box (matches JID, text, status, ip)
//   #service           data-service = "" (unknown) | init | online |
//                      standby: the last state the stream said; while it
//                      is not connected, the text says "when last connected"
//   #stream            data-state = idle | connecting | connected |
//                      reconnecting | unauthorized, and in words; then
//                      #countdown (" in N s" while reconnecting) and
//                      #stream-detail (why: the error, "the stream ended")
//   #updated           <time>: the last event applied (datetime attribute)
//   #counts            data-users, data-conns: the totals (unfiltered)
//   #partial           shown while the service is in init
//   #users             the list; one <li> per user:
//     [data-user="alice@example.org"]   data-status = the user's most
//                      available status (chat > online > away > xa > dnd),
//                      data-conns = the number of connections; hidden
//                      when the filter leaves none of them
//     [data-jid="alice@example.org/laptop"]   one per connection, in the
//                      user's <li>; data-status; cells .resource .status
//                      .text .prio .since .idle .ip (since and idle hold a
//                      <time datetime=… title="… UTC">)
//   #empty             shown when nobody is online or nothing matches
//   window.pubpresence.SSEParser   the stream parser (tested on its own)
//
// The token lives in sessionStorage (this tab, this browser session) and
// only ever in the Authorization header: never in a URL.
'use strict';

(() => {
  const TOKEN_KEY = 'pubpresence.token';
  const EVENTS_URL = 'api/v1/events'; // relative: works behind a path prefix
  const BACKOFF_MIN = 1000; // ms: first reconnection delay
  const BACKOFF_MAX = 10000; // ms: longest reconnection delay
  const RETRY_AFTER_MAX = 300; // s: a Retry-After longer than this is capped
  const SILENCE_LIMIT = 45000; // ms without a byte (heartbeats come every 15 s): reconnect
  const CLOCK_TICK = 15000; // ms between refreshes of the relative times
  const RANK = { chat: 5, online: 4, away: 3, xa: 2, dnd: 1 };
  const STATUS_WORD = {
    chat: 'chat', online: 'online', away: 'away', xa: 'extended away',
    dnd: 'do not disturb', offline: 'offline',
  };

  // ---------------------------------------------------------------------
  // Server-Sent Events parsing (HTML Living Standard, "event stream
  // interpretation"): lines end with CRLF, LF or CR, a frame may be split
  // anywhere across chunks, comments start with ':', a field is "name:
  // value" with one optional space after the colon, an empty line
  // dispatches. The last event ID is kept across events (an event without
  // id: keeps the one before).

  class SSEParser {
    // onEvent({type, data, lastEventId}) for each dispatched event;
    // onRetry(ms) for each valid retry: field; onComment(text).
    constructor({ onEvent, onRetry = () => {}, onComment = () => {} }) {
      this.onEvent = onEvent;
      this.onRetry = onRetry;
      this.onComment = onComment;
      this.decoder = new TextDecoder('utf-8');
      this.buf = '';
      this.started = false; // a leading BOM is dropped
      this.skipLF = false; // the last chunk ended with CR: a LF first in the next is part of it
      this.type = '';
      this.data = [];
      this.lastEventId = '';
    }

    // push feeds bytes (Uint8Array) or text (string).
    push(chunk) {
      let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
      if (!this.started && text.length > 0) {
        this.started = true;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      if (this.skipLF && text.length > 0) {
        if (text[0] === '\n') text = text.slice(1);
        this.skipLF = false;
      }
      this.buf += text;
      let start = 0;
      for (;;) {
        const cr = this.buf.indexOf('\r', start);
        const lf = this.buf.indexOf('\n', start);
        if (cr < 0 && lf < 0) break;
        let end;
        let next;
        if (lf >= 0 && (cr < 0 || lf < cr)) {
          end = lf;
          next = lf + 1;
        } else {
          end = cr;
          next = cr + 1;
          if (next === this.buf.length) this.skipLF = true; // CRLF may straddle chunks
          else if (this.buf[next] === '\n') next++;
        }
        this.line(this.buf.slice(start, end));
        start = next;
      }
      this.buf = this.buf.slice(start);
    }

    // end drops an unfinished event, as the standard says.
    end() {
      this.buf = '';
      this.type = '';
      this.data = [];
    }

    line(line) {
      if (line === '') {
        this.dispatch();
        return;
      }
      if (line[0] === ':') {
        this.onComment(line.slice(1).trimStart());
        return;
      }
      const colon = line.indexOf(':');
      let field = line;
      let value = '';
      if (colon >= 0) {
        field = line.slice(0, colon);
        value = line.slice(colon + 1);
        if (value[0] === ' ') value = value.slice(1);
      }
      switch (field) {
        case 'event':
          this.type = value;
          break;
        case 'data':
          this.data.push(value);
          break;
        case 'id':
          if (!value.includes('\0')) this.lastEventId = value;
          break;
        case 'retry':
          if (/^[0-9]+$/.test(value)) this.onRetry(Number(value));
          break;
        default: // unknown fields are ignored
      }
    }

    dispatch() {
      const type = this.type || 'message';
      const data = this.data.join('\n');
      const hadData = this.data.length > 0;
      this.type = '';
      this.data = [];
      if (!hadData) return;
      this.onEvent({ type, data, lastEventId: this.lastEventId });
    }
  }
  window.pubpresence = Object.freeze({ SSEParser });

  // ---------------------------------------------------------------------
  // Elements.

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $('token-form'), token: $('token'), tokenError: $('token-error'),
    forget: $('forget'), view: $('view'), filter: $('filter'),
    service: $('service'), stream: $('stream'), countdown: $('countdown'), streamDetail: $('stream-detail'),
    updated: $('updated'), counts: $('counts'), partial: $('partial'),
    users: $('users'), empty: $('empty'),
  };

  // ---------------------------------------------------------------------
  // Time.

  const pad = (n) => String(n).padStart(2, '0');
  function utcText(d) {
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
  }

  // relTime says how long ago ms (a Date.getTime()) was, from now.
  function relTime(ms, now) {
    let s = Math.round((now - ms) / 1000);
    let suffix = ' ago';
    if (s < 0) {
      if (s > -60) return 'just now'; // clocks a little apart
      s = -s;
      suffix = ' from now';
    }
    if (s < 10) return 'just now';
    if (s < 60) return `${s} s${suffix}`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min${suffix}`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h} h${suffix}`;
    const d = Math.floor(h / 24);
    if (d < 60) return `${d} d${suffix}`;
    return utcText(new Date(ms)).slice(0, 10);
  }

  // setTime makes the <time> t show iso (XEP-0082) as a relative time,
  // with the exact UTC time as its title.
  function setTime(t, iso, now) {
    const ms = Date.parse(iso);
    if (Number.isNaN(ms)) {
      t.textContent = iso;
      return;
    }
    t.dateTime = iso;
    t.dataset.ms = String(ms);
    t.title = utcText(new Date(ms));
    t.textContent = relTime(ms, now);
  }

  function refreshTimes() {
    const now = Date.now();
    for (const t of document.querySelectorAll('time[data-ms]')) {
      const s = relTime(Number(t.dataset.ms), now);
      if (t.textContent !== s) t.textContent = s;
    }
  }
  setInterval(refreshTimes, CLOCK_TICK);

  // ---------------------------------------------------------------------
  // State: users by bare JID, each with its connections by full JID.

  const users = new Map(); // bare JID → user
  let order = []; // the bare JIDs, sorted
  let totalConns = 0;
  let shownUsers = 0; // after the filter
  let shownConns = 0;
  let service = '';
  let filter = '';

  const byCodeUnit = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

  // search returns the position of bare in order, or where it would go.
  function search(bare) {
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (order[mid] < bare) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  function bareOf(c) {
    if (c.name) return c.name;
    const i = c.fulljid.indexOf('/');
    return i < 0 ? c.fulljid : c.fulljid.slice(0, i);
  }

  function setConn(c, mark = true) {
    const bare = bareOf(c);
    let u = users.get(bare);
    if (!u) {
      u = { bare, conns: new Map(), el: null, connEls: new Map(), shown: false, shownConns: 0 };
      users.set(bare, u);
      order.splice(search(bare), 0, bare);
    }
    if (!u.conns.has(c.fulljid)) totalConns++;
    u.conns.set(c.fulljid, c);
    if (mark) markDirty(u);
  }

  function dropConn(c) {
    const bare = bareOf(c);
    const u = users.get(bare);
    if (!u || !u.conns.delete(c.fulljid)) return;
    totalConns--;
    if (u.conns.size === 0) {
      users.delete(bare);
      const i = search(bare);
      if (order[i] === bare) order.splice(i, 1);
    }
    markDirty(u);
  }

  function replaceAll(conns) {
    users.clear();
    order = [];
    totalConns = 0;
    for (const c of conns) setConn(c, false);
    fullRender = true;
    schedule();
  }

  // userStatus: the most available connection's status (then the higher
  // priority, then the later since), as the API's per-user answer.
  function userStatus(u) {
    let best = null;
    for (const c of u.conns.values()) {
      if (best === null) {
        best = c;
        continue;
      }
      const rc = RANK[c.status] || 0;
      const rb = RANK[best.status] || 0;
      if (rc !== rb) {
        if (rc > rb) best = c;
      } else if ((c.priority || 0) !== (best.priority || 0)) {
        if ((c.priority || 0) > (best.priority || 0)) best = c;
      } else if ((Date.parse(c.since) || 0) > (Date.parse(best.since) || 0)) {
        best = c;
      }
    }
    return best ? best.status : 'offline';
  }

  // ---------------------------------------------------------------------
  // Rendering, coalesced: changes mark users dirty, and one render per
  // animation frame (or 100 ms when frames do not come, e.g. a hidden
  // tab) redoes only those users' elements. A snapshot, or a burst that
  // touches a large part of the list, rebuilds the whole list at once.

  const dirty = new Set();
  let fullRender = false;
  let queued = false;

  function markDirty(u) {
    dirty.add(u);
    schedule();
  }

  function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(render);
    setTimeout(render, 100);
  }

  function render() {
    if (!queued) return;
    queued = false;
    const now = Date.now();
    if (fullRender || dirty.size > Math.max(200, users.size / 4)) {
      rebuild(now);
    } else {
      for (const u of dirty) renderUser(u, now);
    }
    dirty.clear();
    fullRender = false;
    renderCounts();
    if (lastEvent !== shownEvent) {
      shownEvent = lastEvent;
      setTime(el.updated, new Date(lastEvent).toISOString(), now);
    }
  }

  function rebuild(now) {
    const frag = document.createDocumentFragment();
    shownUsers = 0;
    shownConns = 0;
    for (const bare of order) {
      const u = users.get(bare);
      u.el = null;
      u.connEls = new Map();
      u.shown = false;
      u.shownConns = 0;
      fillUser(u, now);
      frag.append(u.el);
    }
    el.users.replaceChildren(frag);
  }

  function renderUser(u, now) {
    if (users.get(u.bare) !== u) { // gone
      if (u.el) u.el.remove();
      if (u.shown) shownUsers--;
      shownConns -= u.shownConns;
      u.el = null;
      u.shown = false;
      u.shownConns = 0;
      return;
    }
    const isNew = !u.el;
    fillUser(u, now);
    if (isNew) {
      // Before the next user in order that has its element.
      let next = null;
      for (let i = search(u.bare) + 1; i < order.length && !next; i++) {
        const v = users.get(order[i]);
        if (v.el && v.el.parentNode === el.users) next = v.el;
      }
      el.users.insertBefore(u.el, next);
    }
  }

  function make(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // statusCell: a coloured dot and the word.
  function statusCell(tag, cls, status) {
    const s = make(tag, cls);
    s.append(make('span', `dot s-${RANK[status] ? status : 'offline'}`), make('span', 'word', STATUS_WORD[status] || status));
    return s;
  }

  function labelled(cls, label) {
    const s = make('span', cls);
    s.append(make('span', 'lbl', label));
    return s;
  }

  function timeCell(cls, label, iso, now) {
    if (!iso) return make('span', `${cls} none`);
    const s = labelled(cls, label);
    const t = make('time', 'rel');
    setTime(t, iso, now);
    s.append(t);
    return s;
  }

  function connElement(c, now) {
    const li = make('li', 'conn');
    li.dataset.jid = c.fulljid;
    li.dataset.status = c.status;
    const slash = c.fulljid.indexOf('/');
    const resource = slash < 0 ? '' : c.fulljid.slice(slash + 1);
    const r = make('span', 'resource', resource);
    r.title = c.fulljid;
    const text = make('span', 'text', c.text || '');
    if (c.text) text.title = c.text;
    else text.classList.add('none');
    const prio = labelled('prio num', 'priority ');
    prio.append(String(c.priority ?? 0));
    let ip = make('span', 'ip none');
    if (c.ip) {
      ip = labelled('ip', 'IP ');
      ip.append(c.ip);
    }
    li.append(r, statusCell('span', 'status', c.status), text, prio,
      timeCell('since', 'since ', c.since, now), timeCell('idle', 'idle since ', c.idle, now), ip);
    return li;
  }

  // fillUser (re)builds u's element's content, or the element itself.
  function fillUser(u, now) {
    if (!u.el) {
      u.el = make('li', 'user');
      u.el.dataset.user = u.bare;
    }
    const status = userStatus(u);
    u.el.dataset.status = status;
    u.el.dataset.conns = String(u.conns.size);
    const head = make('div', 'user-head');
    head.title = `${u.bare}: ${STATUS_WORD[status] || status}`;
    head.append(make('span', `dot s-${RANK[status] ? status : 'offline'}`), make('span', 'jid', u.bare),
      make('span', 'word', STATUS_WORD[status] || status));
    if (u.conns.size > 1) head.append(make('span', 'nconns', `${u.conns.size} connections`));
    const list = make('ul', 'conns');
    u.connEls = new Map();
    const jids = [...u.conns.keys()].sort(byCodeUnit);
    for (const jid of jids) {
      const li = connElement(u.conns.get(jid), now);
      u.connEls.set(jid, li);
      list.append(li);
    }
    u.el.replaceChildren(head, list);
    applyFilter(u);
  }

  // ---------------------------------------------------------------------
  // The filter: a connection is shown when the query is in its full JID,
  // text, status or ip (case-insensitive); all of a user's connections
  // when it is in the bare JID.

  function connMatches(c, q) {
    return c.fulljid.toLowerCase().includes(q) || (c.text || '').toLowerCase().includes(q) ||
      c.status.includes(q) || (STATUS_WORD[c.status] || '').includes(q) || (c.ip || '').includes(q);
  }

  function applyFilter(u) {
    const q = filter;
    const all = q === '' || u.bare.toLowerCase().includes(q);
    let n = 0;
    for (const [jid, li] of u.connEls) {
      const show = all || connMatches(u.conns.get(jid), q);
      if (show) n++;
      if (li.hidden === show) li.hidden = !show;
    }
    const shown = n > 0;
    if (u.el.hidden === shown) u.el.hidden = !shown;
    shownUsers += (shown ? 1 : 0) - (u.shown ? 1 : 0);
    shownConns += n - u.shownConns;
    u.shown = shown;
    u.shownConns = n;
  }

  let filterTimer = 0;
  el.filter.addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      filter = el.filter.value.trim().toLowerCase();
      for (const bare of order) {
        const u = users.get(bare);
        if (u.el) applyFilter(u);
      }
      renderCounts();
    }, 120);
  });

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many}`;
  }

  function renderCounts() {
    el.counts.dataset.users = String(users.size);
    el.counts.dataset.conns = String(totalConns);
    if (filter === '') {
      el.counts.textContent = `${plural(users.size, 'user', 'users')} · ${plural(totalConns, 'connection', 'connections')}`;
    } else {
      el.counts.textContent = `${shownUsers} of ${plural(users.size, 'user', 'users')} · ` +
        `${shownConns} of ${plural(totalConns, 'connection', 'connections')}`;
    }
    let empty = '';
    if (users.size === 0) empty = service === '' ? 'Waiting for the service…' : 'Nobody is online.';
    else if (shownUsers === 0) empty = 'Nobody matches the filter.';
    el.empty.textContent = empty;
    el.empty.hidden = empty === '';
  }

  // ---------------------------------------------------------------------
  // Service and stream state.

  // setService records the service's state. It is kept across a
  // reconnection: a resumed stream sends the state's changes it missed, a
  // fresh one starts with a snapshot that says it.
  function setService(s) {
    service = s;
    renderService();
    renderCounts();
  }

  function renderService() {
    el.service.dataset.service = service;
    const text = {
      '': 'unknown', init: 'init (starting: partial list)', online: 'online',
      standby: 'standby (another instance serves)',
    }[service] ?? service;
    const stale = service !== '' && el.stream.dataset.state !== 'connected';
    el.service.textContent = stale ? `${text}, when last connected` : text;
    el.partial.hidden = service !== 'init';
  }

  let countdownTimer = 0;

  // setStream shows the stream's state; for "reconnecting", retryAt is
  // when the next attempt starts, and detail why.
  function setStream(state, detail = '', retryAt = 0) {
    clearInterval(countdownTimer);
    el.stream.dataset.state = state;
    el.view.toggleAttribute('data-stale', state !== 'connected');
    renderService();
    el.stream.textContent = {
      idle: 'not connected', connecting: 'connecting…', connected: 'connected',
      reconnecting: 'reconnecting', unauthorized: 'token refused',
    }[state];
    el.streamDetail.textContent = detail ? ` — ${detail}` : '';
    el.countdown.textContent = '';
    if (state === 'reconnecting' && retryAt) {
      const tick = () => {
        const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        el.countdown.textContent = ` in ${s} s`;
      };
      tick();
      countdownTimer = setInterval(tick, 1000);
    }
  }

  let lastEvent = 0; // when the last event was applied (ms)
  let shownEvent = 0; // what #updated shows

  function touched() {
    lastEvent = Date.now();
    schedule();
  }

  // ---------------------------------------------------------------------
  // Following the event stream.

  let token = '';
  let generation = 0; // bumped to stop the current follower
  let controller = null;
  let lastId = null; // the last event ID applied; sent as Last-Event-ID
  let retryMs = BACKOFF_MIN; // the server's retry: field

  class StreamError extends Error {}

  // apply handles one event; it throws StreamError when the stream must be
  // restarted from a fresh snapshot.
  function apply(ev) {
    let v;
    try {
      v = JSON.parse(ev.data);
    } catch (e) {
      throw new StreamError(`unreadable ${ev.type} event: ${e.message}`);
    }
    switch (ev.type) {
      case 'snapshot':
        replaceAll(Array.isArray(v.connections) ? v.connections : []);
        setService(v.service || '');
        lastId = ev.lastEventId || null;
        break;
      case 'change': {
        if (lastId !== null && /^[0-9]+$/.test(lastId) && /^[0-9]+$/.test(ev.lastEventId)) {
          const want = BigInt(lastId) + 1n;
          const got = BigInt(ev.lastEventId);
          if (got < want) return; // seen already
          if (got > want) throw new StreamError(`changes ${want}…${got - 1n} are missing`);
        }
        if (!v || typeof v.fulljid !== 'string' || typeof v.status !== 'string') {
          throw new StreamError('a change without fulljid or status');
        }
        if (v.status === 'offline') dropConn(v);
        else setConn(v);
        lastId = ev.lastEventId || lastId;
        break;
      }
      case 'service':
        setService(v.service || '');
        break;
      default:
        return; // an event type of a later version
    }
    touched();
  }

  function retryAfter(resp) {
    const h = resp.headers.get('Retry-After');
    if (!h) return 0;
    let s = /^[0-9]+$/.test(h.trim()) ? Number(h) : (Date.parse(h) - Date.now()) / 1000;
    if (!(s > 0)) return 0;
    s = Math.min(s, RETRY_AFTER_MAX);
    return s * 1000;
  }

  async function errorText(resp) {
    try {
      const j = await resp.json();
      if (j && typeof j.error === 'string') return j.error;
    } catch (e) {
      // not JSON
    }
    return resp.statusText || '';
  }

  function sleep(ms, gen) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      stopSleep = () => {
        clearTimeout(t);
        resolve();
      };
      if (gen !== generation) stopSleep();
    });
  }
  let stopSleep = () => {};

  // follow keeps the stream open until generation changes.
  async function follow(gen) {
    let backoff = BACKOFF_MIN;
    while (gen === generation) {
      let delay = 0;
      let detail = '';
      let standby = false;
      controller = new AbortController();
      const ctl = controller;
      try {
        setStream('connecting');
        const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
        if (lastId !== null) headers['Last-Event-ID'] = lastId;
        const resp = await fetch(EVENTS_URL, {
          headers, signal: ctl.signal, cache: 'no-store', credentials: 'omit', redirect: 'error',
        });
        if (gen !== generation) return;
        if (resp.status === 401) {
          unauthorized(await errorText(resp));
          return;
        }
        if (resp.status === 503) {
          const msg = await errorText(resp);
          standby = msg.startsWith('standby');
          delay = retryAfter(resp) || backoff;
          detail = `HTTP 503: ${msg}`;
        } else if (!resp.ok) {
          delay = backoff;
          detail = `HTTP ${resp.status}: ${await errorText(resp)}`;
        } else if (!(resp.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
          delay = backoff;
          detail = `not an event stream: ${resp.headers.get('Content-Type')}`;
        } else {
          const got = await read(resp.body, ctl, gen); // connected from its first event
          if (gen !== generation) return;
          // An open stream that carried events starts a new series of
          // attempts, after the server's retry: time.
          if (got) backoff = Math.min(Math.max(retryMs, BACKOFF_MIN), BACKOFF_MAX);
          delay = backoff;
          detail = 'the stream ended';
        }
      } catch (e) {
        if (gen !== generation) return;
        delay = backoff;
        if (e instanceof StreamError) {
          detail = e.message;
          lastId = null; // start again from a snapshot
        } else if (ctl.signal.aborted && ctl.signal.reason instanceof Error) {
          detail = ctl.signal.reason.message; // the silence watchdog
        } else {
          detail = `network error: ${e.message}`;
        }
      } finally {
        ctl.abort();
      }
      if (gen !== generation) return;
      // A standby instance says it is one. Else the state and the list
      // stay as they were, said to be from when last connected, and dimmed.
      if (standby) setService('standby');
      backoff = Math.min(backoff * 2, BACKOFF_MAX);
      setStream('reconnecting', detail, Date.now() + delay);
      if (delay > 0) await sleep(delay, gen);
    }
  }

  // read parses the body until it ends; it returns whether any event came.
  async function read(body, ctl, gen) {
    const reader = body.getReader();
    let got = false;
    let failure = null;
    const parser = new SSEParser({
      onEvent: (ev) => {
        if (failure || gen !== generation) return;
        try {
          apply(ev);
          if (!got) setStream('connected');
          got = true;
        } catch (e) {
          failure = e;
        }
      },
      onRetry: (ms) => { retryMs = ms; },
    });
    let silence = 0;
    const watch = () => {
      clearTimeout(silence);
      silence = setTimeout(() => ctl.abort(new Error(`no data for ${SILENCE_LIMIT / 1000} s`)), SILENCE_LIMIT);
    };
    watch();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || gen !== generation) break;
        watch();
        parser.push(value);
        if (failure) throw failure;
      }
    } finally {
      clearTimeout(silence);
      parser.end();
      reader.cancel().catch(() => {});
    }
    return got;
  }

  function stop() {
    generation++;
    if (controller) controller.abort();
    stopSleep();
  }

  function start() {
    stop();
    const gen = generation;
    el.form.hidden = true;
    el.view.hidden = false;
    el.forget.hidden = false;
    follow(gen);
  }

  function clearState() {
    replaceAll([]);
    lastId = null;
    setService('');
  }

  function showForm(message, isError) {
    el.view.hidden = true;
    el.forget.hidden = true;
    el.form.hidden = false;
    el.tokenError.textContent = message;
    el.tokenError.hidden = message === '';
    el.tokenError.classList.toggle('info', !isError);
    el.token.value = '';
    el.token.focus();
  }

  function unauthorized(serverSays) {
    stop();
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    clearState();
    setStream('unauthorized', `HTTP 401: ${serverSays}`);
    showForm('The server refused this token (HTTP 401). Enter a token from the service\'s http.tokens_file.', true);
  }

  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = el.token.value.trim();
    if (t === '') {
      showForm('Enter a token.', true);
      return;
    }
    token = t;
    el.token.value = '';
    try {
      sessionStorage.setItem(TOKEN_KEY, t);
    } catch (err) {
      // storage disabled: the token lasts as long as the page
    }
    clearState();
    start();
  });

  el.forget.addEventListener('click', () => {
    stop();
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    clearState();
    setStream('idle');
    showForm('The token is forgotten.', false);
  });

  // ---------------------------------------------------------------------
  // Start.

  let saved = null;
  try {
    saved = sessionStorage.getItem(TOKEN_KEY);
  } catch (e) {
    // storage disabled
  }
  renderCounts();
  if (saved) {
    token = saved;
    start();
  } else {
    showForm('', false);
  }
})();
