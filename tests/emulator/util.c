/* Small helpers: string buffers, percent/base64 coding, randomness. */
#include "emulator.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

/* ---- buffer ---------------------------------------------------------- */

static bool s_buf_reserve(struct emu_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (extra > SIZE_MAX / 2 - b->len) {
		b->oom = true;
		return false;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void emu_buf_free(struct emu_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

void emu_buf_append(struct emu_buf *b, const char *s, size_t n)
{
	if (!s_buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void emu_buf_puts(struct emu_buf *b, const char *s)
{
	emu_buf_append(b, s, strlen(s));
}

void emu_buf_printf(struct emu_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!s_buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static bool s_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

void emu_buf_pct(struct emu_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (s_unreserved(c)) {
			emu_buf_append(b, (const char *)&s[i], 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			emu_buf_append(b, e, 3);
		}
	}
}

void emu_buf_java_urlencode(struct emu_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '.' || c == '-' || c == '*' || c == '_') {
			emu_buf_append(b, s, 1);
		} else if (c == ' ') {
			emu_buf_append(b, "+", 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			emu_buf_append(b, e, 3);
		}
	}
}

void emu_buf_html(struct emu_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': emu_buf_puts(b, "&amp;"); break;
		case '<': emu_buf_puts(b, "&lt;"); break;
		case '>': emu_buf_puts(b, "&gt;"); break;
		case '"': emu_buf_puts(b, "&quot;"); break;
		case '\'': emu_buf_puts(b, "&#39;"); break;
		default: emu_buf_append(b, s, 1); break;
		}
	}
}

char *emu_buf_take(struct emu_buf *b)
{
	if (b->oom) {
		emu_buf_free(b);
		return NULL;
	}
	if (!b->data && !s_buf_reserve(b, 0))
		return NULL;
	if (b->len == 0)
		b->data[0] = '\0';
	char *p = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

/* ---- percent decoding ------------------------------------------------ */

static int s_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *emu_pct_decode(const char *s, size_t n, bool plus_is_space)
{
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (n - i < 3)
				goto bad;
			int h = s_hexval(s[i + 1]), l = s_hexval(s[i + 2]);
			if (h < 0 || l < 0)
				goto bad;
			c = (char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		/* An embedded NUL would silently truncate every later check. */
		if (c == '\0')
			goto bad;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* ---- base64 ------------------------------------------------------------ */

void emu_base64url(const unsigned char *in, size_t n, char *out, size_t out_size)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	size_t i = 0;
	if (out_size == 0)
		return;
	while (i < n) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t take = 1;
		if (i + 1 < n) {
			v |= (uint32_t)in[i + 1] << 8;
			take++;
		}
		if (i + 2 < n) {
			v |= in[i + 2];
			take++;
		}
		if (o + take + 1 >= out_size)
			break; /* no room for this group and the NUL: truncate */
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		if (take > 1)
			out[o++] = tbl[(v >> 6) & 63];
		if (take > 2)
			out[o++] = tbl[v & 63];
		i += take;
	}
	out[o] = '\0';
}

static int s_b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long emu_base64_decode(const char *in, size_t n, unsigned char *out, size_t out_size)
{
	/* Padded standard base64 only: that is what RFC 5849 §3.4.3 uses. */
	if (n % 4 != 0)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
			} else {
				if (pad)
					return -1; /* data after padding */
				v[k] = s_b64val(in[i + k]);
				if (v[k] < 0)
					return -1;
			}
		}
		uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
			     ((uint32_t)v[2] << 6) | (uint32_t)v[3];
		size_t take = 3 - (size_t)pad;
		if (o + take > out_size)
			return -1;
		out[o++] = (unsigned char)(w >> 16);
		if (take > 1)
			out[o++] = (unsigned char)(w >> 8);
		if (take > 2)
			out[o++] = (unsigned char)w;
	}
	return (long)o;
}

/* ---- randomness and comparison -------------------------------------- */

int emu_random_token(char out[EMU_TOKEN_BUF])
{
	unsigned char raw[32];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return -1;
	emu_base64url(raw, sizeof raw, out, EMU_TOKEN_BUF);
	OPENSSL_cleanse(raw, sizeof raw);
	return 0;
}

int emu_random_hex(char *out, size_t nbytes)
{
	unsigned char raw[64];
	if (nbytes > sizeof raw || RAND_bytes(raw, (int)nbytes) != 1)
		return -1;
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	out[2 * nbytes] = '\0';
	return 0;
}

bool emu_consttime_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}

bool emu_str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool emu_contains_ci(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);
	if (n == 0)
		return true;
	for (const char *h = haystack; *h; h++)
		if (strncasecmp(h, needle, n) == 0)
			return true;
	return false;
}

long emu_parse_nonneg(const char *s, long max)
{
	if (!s || !*s || strlen(s) > 18)
		return -1;
	long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v > max ? -1 : v;
}

bool emu_is_absolute_http_url(const char *s)
{
	bool ok = false;
	char *scheme = NULL, *host = NULL, *user = NULL, *frag = NULL;
	CURLU *u = curl_url();
	if (!u || strlen(s) > EMU_MAX_URL)
		goto out;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			goto out;
	if (curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
		goto out;
	/* curl adds a scheme to "host/path"; insist the text really had one. */
	if (strncasecmp(s, scheme, strlen(scheme)) != 0 ||
	    strncmp(s + strlen(scheme), "://", 3) != 0)
		goto out;
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK)
		goto out; /* RFC 6749 §3.1.2: no fragment in a redirection URI */
	if (strchr(s, '#'))
		goto out;
	ok = host[0] != '\0';
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(frag);
	if (u)
		curl_url_cleanup(u);
	return ok;
}

time_t emu_now(void)
{
	return time(NULL);
}
