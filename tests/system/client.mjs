// An HTTP client with a cookie jar, for driving Portico like a browser does
// (without following redirects, so every hop can be checked).
// The web closes idle keep-alive connections at once when it stops (after
// 5 s otherwise, later than fetch reuses them); a request that fetch sends on
// such a connection just as it closes fails with "other side closed" before
// the server read it. That request never ran: send it once more.
import '../compat.mjs';
async function fetchOnce(url, init) {
  try {
    return await fetch(url, init);
  } catch (e) {
    const code = e.cause && (e.cause.code || e.cause.message);
    if (!/UND_ERR_SOCKET|ECONNRESET|other side closed/.test(String(code))) throw e;
    return fetch(url, init);
  }
}

export class Client {
  constructor(base, { origin } = {}) {
    this.base = base.replace(/\/$/, '');
    this.origin = origin === undefined ? new URL(this.base).origin : origin;
    this.jar = new Map(); // "host|name" -> value
  }

  cookieHeader(url) {
    const host = new URL(url).host;
    const parts = [];
    for (const [k, v] of this.jar) {
      const [h, name] = k.split('|');
      if (h === host) parts.push(`${name}=${v}`);
    }
    return parts.join('; ');
  }

  storeCookies(url, headers) {
    const host = new URL(url).host;
    const set = headers.getSetCookie();
    for (const line of set) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const maxAge = attrs.map((a) => a.trim().toLowerCase()).find((a) => a.startsWith('max-age='));
      if (value === '' || (maxAge && Number(maxAge.split('=')[1]) <= 0)) this.jar.delete(`${host}|${name}`);
      else this.jar.set(`${host}|${name}`, value);
    }
  }

  cookie(name, url = this.base) {
    return this.jar.get(`${new URL(url).host}|${name}`);
  }

  setCookie(name, value, url = this.base) {
    this.jar.set(`${new URL(url).host}|${name}`, value);
  }

  async request(method, pathOrUrl, { form, headers = {}, body } = {}) {
    const url = /^https?:/.test(pathOrUrl) ? pathOrUrl : this.base + pathOrUrl;
    const h = { ...headers };
    const cookies = this.cookieHeader(url);
    if (cookies) h.cookie = cookies;
    if (form) {
      body = new URLSearchParams(form).toString();
      h['content-type'] = 'application/x-www-form-urlencoded';
      if (this.origin && !('origin' in h) && url.startsWith(this.base)) h.origin = this.origin;
    }
    const r = await fetchOnce(url, { method, headers: h, body, redirect: 'manual' });
    this.storeCookies(url, r.headers);
    const text = await r.text();
    return { status: r.status, headers: r.headers, text, location: r.headers.get('location'), url };
  }

  get(path, opts) { return this.request('GET', path, opts); }
  post(path, form, opts = {}) { return this.request('POST', path, { ...opts, form }); }

  // Follow redirects (GET) up to n hops; returns the last response.
  async follow(res, n = 10) {
    while (res.status >= 300 && res.status < 400 && res.location && n-- > 0) {
      const next = new URL(res.location, res.url).toString();
      res = await this.get(next);
    }
    return res;
  }
}

export function csrfFrom(html) {
  const m = html.match(/name="csrf" value="([^"]+)"/);
  return m ? m[1] : null;
}

export function formField(html, name) {
  const re = new RegExp(`name="${name}"[^>]*value="([^"]*)"`);
  const m = html.match(re);
  return m ? m[1].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>') : null;
}
