// Vigil's monitoring-centre console: the alert queue (most urgent first), tags' health, and
// one order's picture on a map (zones, buffers, the tag's recent track, a scale), polled from
// the operator API every few seconds. The victim's phone arrives masked and her own positions
// never arrive (a distance only). The token lives in this tab's sessionStorage.

import * as L from 'leaflet';

/** Cognito's managed sign-in (authorization code with PKCE); the deployed console. */
interface CognitoSignIn {
  kind: 'cognito';
  domain: string;
  clientId: string;
  redirectUri: string;
}

interface Config {
  apiBase: string;
  signIn: { kind: 'local' } | CognitoSignIn;
  tileUrl?: string;
  tileAttribution?: string;
  pollMs?: number;
}

interface Alert {
  order_id: string;
  zone_id: string;
  tag_id: string;
  level: 'warning' | 'breach';
  since_ms: number | null;
  state_rev: number;
  acknowledged_by: string | null;
  urgent: boolean;
}

interface OrderRow {
  order: { order_id: string; tag_id: string };
  zones: string[];
  in_force: boolean;
}

interface TagHealth {
  tag_id: string;
  orders: string[];
  last_seen_ms: number | null;
  battery_pct: number | null;
  conditions: string[];
  silent: boolean;
}

type Shape =
  | { circle: { lat: number; lon: number; radius_m: number } }
  | { polygon: [number, number][] };

type ZoneOnMap = Shape & {
  zone_id: string;
  kind: string;
  buffer_m: number;
  in_force: boolean;
};

interface Picture {
  order: { order: { order_id: string; tag_id: string; force_id?: string; victim: { phone: string } }; in_force: boolean };
  zones: ZoneOnMap[];
  states: { zone_id: string; level: string; since_ms: number | null; rev: number }[];
  track: { lat: number; lon: number; accuracy_m: number; at_ms: number; received_at_ms: number }[];
  victim_distance_m: number | null;
  health: TagHealth | null;
  history: { seq: number; kind: string; recorded_at_ms: number; detail: Record<string, unknown> }[];
}

const TOKEN_KEY = 'vigil.console.token';
const PKCE_KEY = 'vigil.console.pkce';
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let config: Config;
let map: L.Map | undefined;
let layers: L.LayerGroup | undefined;
let selected: string | undefined;
let alerts: Alert[] = [];
let poller: number | undefined;
let fitted: string | undefined;

class Unauthorized extends Error {}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (init.body) headers.set('content-type', 'application/json');
  const response = await fetch(`${config.apiBase}${path}`, { ...init, headers });
  if (response.status === 401) throw new Unauthorized();
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(body?.error ?? `${response.status}`);
  return body as T;
}

function ago(ms: number | null): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return new Date(ms).toLocaleString();
}

function text(tag: string, content: string, className?: string): HTMLElement {
  const el = document.createElement(tag);
  el.textContent = content;
  if (className) el.className = className;
  return el;
}

function status(message: string) {
  $('status').textContent = message;
}

// ---- sign-in ----

async function showSignIn(note = '') {
  stopPolling();
  sessionStorage.removeItem(TOKEN_KEY);
  $('console').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('sign-in-note').textContent = note;
  if (config.signIn.kind === 'cognito') {
    $('sign-in-note').textContent = note || 'Sign in with your force account (multi-factor authentication required).';
    $('username-label').hidden = true;
    return;
  }
  $('sign-in-note').textContent =
    note || 'Local sign-in: it stands in for the deployment\'s Cognito user pool and exists only in the local stack.';
  const users = await (await fetch(`${config.apiBase}/local/users`)).json() as { username: string; groups: string[] }[];
  const select = $<HTMLSelectElement>('username');
  select.replaceChildren(
    ...users.map((u) => {
      const option = document.createElement('option');
      option.value = u.username;
      option.textContent = `${u.username} (${u.groups.join(', ') || 'no group'})`;
      return option;
    }),
  );
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Cognito's managed sign-in: off to the authorize endpoint with a PKCE challenge and a state,
 * both kept in this tab until it comes back with the code. */
async function cognitoSignIn(c: CognitoSignIn) {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(48)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const query = new URLSearchParams({
    response_type: 'code',
    client_id: c.clientId,
    redirect_uri: c.redirectUri,
    scope: 'openid',
    code_challenge_method: 'S256',
    code_challenge: challenge,
    state,
  });
  window.location.assign(`${c.domain}/oauth2/authorize?${query}`);
}

/** Back from the managed sign-in with `?code&state`: the code exchanged for tokens (the access
 * token is what the API's JWT authorizer verifies), the query removed from the address. */
async function cognitoCallback(c: CognitoSignIn): Promise<void> {
  const params = new URLSearchParams(window.location.search);
  const code = params.get('code');
  if (!code) return;
  window.history.replaceState(null, '', window.location.pathname);
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) ?? 'null') as { verifier: string; state: string } | null;
  sessionStorage.removeItem(PKCE_KEY);
  if (!saved || saved.state !== params.get('state')) {
    $('sign-in-error').textContent = 'The sign-in came back without the state this tab sent: sign in again.';
    return;
  }
  const response = await fetch(`${c.domain}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', client_id: c.clientId, code, redirect_uri: c.redirectUri, code_verifier: saved.verifier }),
  });
  if (!response.ok) {
    $('sign-in-error').textContent = `Sign-in failed (${response.status}): sign in again.`;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, (await response.json()).access_token);
}

async function signIn(event: SubmitEvent) {
  event.preventDefault();
  $('sign-in-error').textContent = '';
  if (config.signIn.kind === 'cognito') return cognitoSignIn(config.signIn);
  const username = $<HTMLSelectElement>('username').value;
  const response = await fetch(`${config.apiBase}/local/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username }),
  });
  if (!response.ok) {
    $('sign-in-error').textContent = (await response.json()).error ?? 'sign-in failed';
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, (await response.json()).token);
  await start();
}

// ---- the console ----

async function start() {
  let me: { operator: string; scope: string; admin: boolean };
  try {
    me = await api('/api/me');
  } catch (e) {
    await showSignIn(e instanceof Unauthorized ? '' : `Refused: ${(e as Error).message}`);
    return;
  }
  $('sign-in').hidden = true;
  $('console').hidden = false;
  $('sign-out').hidden = false;
  $('who').textContent = `${me.operator} · ${me.scope}${me.admin ? ' · admin' : ''}`;
  ensureMap();
  await refresh();
  poller = window.setInterval(() => void refresh(), config.pollMs ?? 2000);
}

function stopPolling() {
  if (poller !== undefined) window.clearInterval(poller);
  poller = undefined;
}

async function refresh() {
  try {
    const [queue, tags, orders] = await Promise.all([
      api<Alert[]>('/api/alerts'),
      api<TagHealth[]>('/api/tags'),
      api<OrderRow[]>('/api/orders'),
    ]);
    alerts = queue;
    renderQueue();
    renderOrders(orders);
    renderTags(tags);
    if (selected) await showOrder(selected);
    status(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (e instanceof Unauthorized) {
      await showSignIn('Your session ended: sign in again.');
    } else {
      status(`update failed: ${(e as Error).message}`);
    }
  }
}

function renderQueue() {
  const list = $('queue');
  list.replaceChildren(
    ...alerts.map((a) => {
      const li = document.createElement('li');
      li.className = [a.level, a.urgent ? 'urgent' : '', a.acknowledged_by ? 'acknowledged' : '', a.order_id === selected ? 'selected' : '']
        .filter(Boolean)
        .join(' ');
      li.dataset.testid = 'alert';
      li.dataset.order = a.order_id;
      li.dataset.zone = a.zone_id;
      li.append(
        text('strong', `${a.urgent ? 'URGENT ' : ''}${a.level.toUpperCase()}`),
        document.createTextNode(` order ${a.order_id}, zone ${a.zone_id}, tag ${a.tag_id}`),
        document.createElement('br'),
        text('span', `since ${ago(a.since_ms)} · ${a.acknowledged_by ? `acknowledged by ${a.acknowledged_by}` : 'not acknowledged'}`, 'muted'),
      );
      li.addEventListener('click', () => open(a.order_id));
      return li;
    }),
  );
  $('queue-empty').hidden = alerts.length > 0;
}

function open(order: string) {
  selected = order;
  fitted = undefined;
  renderQueue();
  void showOrder(order);
}

function renderOrders(orders: OrderRow[]) {
  const body = $('orders').querySelector('tbody')!;
  body.replaceChildren(
    ...orders.map((o) => {
      const tr = document.createElement('tr');
      tr.dataset.order = o.order.order_id;
      tr.className = o.order.order_id === selected ? 'selected' : '';
      tr.append(text('td', o.order.order_id), text('td', o.order.tag_id), text('td', o.zones.join(', ')), text('td', o.in_force ? 'yes' : 'no'));
      tr.addEventListener('click', () => open(o.order.order_id));
      return tr;
    }),
  );
}

function renderTags(tags: TagHealth[]) {
  const body = $('tags').querySelector('tbody')!;
  body.replaceChildren(
    ...tags.map((t) => {
      const tr = document.createElement('tr');
      tr.dataset.tag = t.tag_id;
      const health = t.conditions.length ? t.conditions.join(', ') : 'ok';
      tr.append(
        text('td', t.tag_id),
        text('td', ago(t.last_seen_ms)),
        text('td', t.battery_pct === null ? '–' : `${t.battery_pct} %`),
        text('td', health, t.silent ? 'silent' : undefined),
      );
      return tr;
    }),
  );
}

function ensureMap() {
  if (map) return;
  map = L.map('map', { zoomControl: true, attributionControl: Boolean(config.tileUrl) }).setView([51.5, -0.12], 13);
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution ?? '', maxZoom: 19 }).addTo(map);
  }
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  layers = L.layerGroup().addTo(map);
}

function drawZone(zone: ZoneOnMap, level: string | undefined): L.Layer[] {
  const colour = level === 'breach' ? '#c0262d' : level === 'warning' ? '#c9a227' : '#1b6ac9';
  const style = { color: colour, weight: 2, fillOpacity: zone.in_force ? 0.25 : 0.05, className: `zone zone-${zone.zone_id}` };
  const buffer = { color: colour, weight: 1, dashArray: '6 6', fill: false, className: `buffer buffer-${zone.zone_id}` };
  if ('circle' in zone) {
    const centre: L.LatLngExpression = [zone.circle.lat, zone.circle.lon];
    return [
      L.circle(centre, { ...buffer, radius: zone.circle.radius_m + zone.buffer_m }),
      L.circle(centre, { ...style, radius: zone.circle.radius_m }).bindTooltip(`${zone.zone_id} (${zone.kind})`),
    ];
  }
  // A polygon's warning buffer is not drawn (its outline alone; the buffer is in the table).
  return [L.polygon(zone.polygon.map(([lon, lat]) => [lat, lon] as L.LatLngTuple), style).bindTooltip(`${zone.zone_id} (${zone.kind}), buffer ${zone.buffer_m} m`)];
}

async function showOrder(id: string) {
  let picture: Picture;
  try {
    picture = await api<Picture>(`/api/orders/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    status(`order ${id}: ${(e as Error).message}`);
    return;
  }
  const o = picture.order.order;
  $('order').hidden = false;
  $('order-title').textContent = `Order ${o.order_id}`;
  $('order-summary').textContent =
    `tag ${o.tag_id} · force ${o.force_id ?? '–'} · ${picture.order.in_force ? 'in force' : 'not in force'} · victim's phone ${o.victim.phone}`;
  const distance = $('victim-distance');
  distance.hidden = picture.victim_distance_m === null;
  if (picture.victim_distance_m !== null) {
    const d = Math.round(picture.victim_distance_m);
    distance.textContent = d < 0 ? `Her device: his newest fix is inside her moving zone (${-d} m)` : `Her device: his newest fix is ${d} m from her moving zone`;
  }
  const levels = new Map(picture.states.map((s) => [s.zone_id, s.level]));
  const states = $('states').querySelector('tbody')!;
  states.replaceChildren(
    ...picture.zones.map((z) => {
      const tr = document.createElement('tr');
      tr.dataset.zone = z.zone_id;
      const state = picture.states.find((s) => s.zone_id === z.zone_id);
      const level = state?.level ?? 'clear';
      tr.append(
        text('td', z.zone_id),
        text('td', `${z.kind}, buffer ${z.buffer_m} m${z.in_force ? '' : ', not in force'}`),
        text('td', level, `level-${level}`),
        text('td', ago(state?.since_ms ?? null)),
      );
      const cell = document.createElement('td');
      const open = alerts.find((a) => a.order_id === o.order_id && a.zone_id === z.zone_id);
      if (open && !open.acknowledged_by) {
        const button = text('button', 'Acknowledge');
        button.dataset.testid = `ack-${z.zone_id}`;
        button.addEventListener('click', () => void acknowledge(o.order_id, z.zone_id));
        cell.append(button);
      } else if (open) {
        cell.textContent = `acknowledged by ${open.acknowledged_by}`;
      }
      tr.append(cell);
      return tr;
    }),
  );
  $('history').replaceChildren(
    ...picture.history.slice(0, 50).map((r) => {
      const action = typeof r.detail.action === 'string' ? ` ${r.detail.action}` : '';
      const by = typeof r.detail.operator === 'string' ? ` by ${r.detail.operator}` : '';
      const li = text('li', `${new Date(r.recorded_at_ms).toLocaleString()} ${r.kind}${action}${by}`) as HTMLLIElement;
      li.value = r.seq;
      li.dataset.kind = r.kind;
      return li;
    }),
  );
  // The map: zones with their buffers, the tag's recent track (newest fix ringed with its
  // accuracy), fitted once per order opened.
  layers!.clearLayers();
  const drawn: L.Layer[] = picture.zones.flatMap((z) => drawZone(z, levels.get(z.zone_id)));
  const points = picture.track.map((f) => [f.lat, f.lon] as L.LatLngTuple);
  if (points.length > 1) drawn.push(L.polyline(points, { color: '#1b2a41', weight: 3, className: 'track' }));
  picture.track.forEach((f, i) => {
    drawn.push(
      L.circleMarker([f.lat, f.lon], {
        radius: i === 0 ? 7 : 4,
        color: '#1b2a41',
        fillColor: i === 0 ? '#ffffff' : '#1b2a41',
        fillOpacity: 1,
        className: i === 0 ? 'fix newest' : 'fix',
      }).bindTooltip(`tag ${o.tag_id}: ${new Date(f.at_ms).toLocaleTimeString()}, ±${Math.round(f.accuracy_m)} m`),
    );
    if (i === 0) drawn.push(L.circle([f.lat, f.lon], { radius: f.accuracy_m, color: '#1b2a41', weight: 1, fillOpacity: 0.1, className: 'accuracy' }));
  });
  drawn.forEach((layer) => layers!.addLayer(layer));
  if (fitted !== id && drawn.length) {
    const bounds = L.featureGroup(drawn).getBounds();
    if (bounds.isValid()) map!.fitBounds(bounds, { padding: [24, 24] });
    fitted = id;
  }
}

async function acknowledge(order: string, zone: string) {
  const note = $<HTMLInputElement>('ack-note').value.trim();
  try {
    await api(`/api/orders/${encodeURIComponent(order)}/zones/${encodeURIComponent(zone)}/ack`, {
      method: 'POST',
      body: JSON.stringify(note ? { note } : {}),
    });
    $<HTMLInputElement>('ack-note').value = '';
    status(`acknowledged ${order} ${zone}`);
  } catch (e) {
    if (e instanceof Unauthorized) return showSignIn('Your session ended: sign in again.');
    status(`acknowledgement failed: ${(e as Error).message}`);
  }
  await refresh();
}

async function main() {
  config = await (await fetch('config.json')).json();
  $('sign-in-form').addEventListener('submit', (e) => void signIn(e as SubmitEvent));
  $('sign-out').addEventListener('click', () => {
    if (config.signIn.kind === 'cognito') {
      const c = config.signIn;
      sessionStorage.removeItem(TOKEN_KEY);
      window.location.assign(`${c.domain}/logout?${new URLSearchParams({ client_id: c.clientId, logout_uri: c.redirectUri })}`);
      return;
    }
    void showSignIn();
  });
  if (config.signIn.kind === 'cognito') await cognitoCallback(config.signIn);
  await start();
}

void main();
