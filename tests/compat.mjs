// What the tests use of newer Node.js, for Debian 12's own Node 18 (whose
// fetch comes from Debian's older undici): imported for its side effect by
// every module that reads responses. Does nothing on a Node that has it.

// Headers#getSetCookie (undici 5.19): every Set-Cookie line of a response.
// get('set-cookie') joins them with ", "; a comma starts a new cookie only
// when a "name=" follows (an Expires date has a comma of its own).
if (typeof Headers !== 'undefined' && typeof Headers.prototype.getSetCookie !== 'function') {
  Object.defineProperty(Headers.prototype, 'getSetCookie', {
    configurable: true,
    writable: true,
    value: function getSetCookie() {
      const joined = this.get('set-cookie');
      if (!joined) return [];
      return joined.split(/,(?=\s*[^;,\s=]+=)/).map((s) => s.trim());
    },
  });
}
