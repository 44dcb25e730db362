/* Request parsing helpers and response writers shared by all endpoints. */
#include "emulator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- parameters ------------------------------------------------------- */

int emu_params_parse(struct emu_params *p, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t end = i;
		while (end < n && s[end] != '&')
			end++;
		if (end > i) {
			const char *eq = memchr(s + i, '=', end - i);
			size_t name_len = eq ? (size_t)(eq - (s + i)) : end - i;
			if (name_len == 0 || p->count >= EMU_MAX_PARAMS)
				return -1;
			char *name = emu_pct_decode(s + i, name_len, true);
			char *value = eq ? emu_pct_decode(eq + 1, (size_t)(s + end - eq - 1), true)
					 : emu_pct_decode("", 0, true);
			if (!name || !value) {
				free(name);
				free(value);
				return -1;
			}
			p->items[p->count].name = name;
			p->items[p->count].value = value;
			p->count++;
		}
		i = end + 1;
	}
	return 0;
}

void emu_params_free(struct emu_params *p)
{
	for (size_t i = 0; i < p->count; i++) {
		free(p->items[i].name);
		free(p->items[i].value);
	}
	p->count = 0;
}

const char *emu_params_get(const struct emu_params *p, const char *name)
{
	for (size_t i = 0; i < p->count; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return p->items[i].value;
	return NULL;
}

size_t emu_params_count(const struct emu_params *p, const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < p->count; i++)
		if (strcmp(p->items[i].name, name) == 0)
			n++;
	return n;
}

bool emu_params_has_duplicates(const struct emu_params *p)
{
	for (size_t i = 0; i < p->count; i++)
		for (size_t j = i + 1; j < p->count; j++)
			if (strcmp(p->items[i].name, p->items[j].name) == 0)
				return true;
	return false;
}

/* ---- request accessors ------------------------------------------------ */

const char *emu_req_header(const struct emu_req *r, const char *name)
{
	return mg_get_header(r->conn, name);
}

char *emu_req_cookie(const struct emu_req *r, const char *name)
{
	const char *h = emu_req_header(r, "Cookie");
	size_t nl = strlen(name);
	if (!h || strlen(h) > 8192)
		return NULL;
	const char *p = h;
	while (*p) {
		while (*p == ' ' || *p == ';')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t vl = len - nl - 1;
			char *v = malloc(vl + 1);
			if (!v)
				return NULL;
			memcpy(v, p + nl + 1, vl);
			v[vl] = '\0';
			return v;
		}
		p += len;
	}
	return NULL;
}

const char *emu_req_form(const struct emu_req *r, const char *name)
{
	if (!r->body_is_form || !r->form_ok)
		return NULL;
	return emu_params_get(&r->form, name);
}

void emu_buf_path(struct emu_buf *b, const char *path)
{
	static const char keep[] = "-._~!$&'()*+,;=:@/";
	static const char hex[] = "0123456789ABCDEF";
	for (const char *s = path; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(keep, c)) {
			emu_buf_append(b, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			emu_buf_append(b, e, 3);
		}
	}
}

static bool s_host_header_ok(const char *h)
{
	if (!h || !*h || strlen(h) > 255)
		return false;
	for (const char *p = h; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr(".-:[]", *p)))
			return false;
	return true;
}

char *emu_req_url(const struct emu_req *r, bool with_query)
{
	struct emu_buf b = { 0 };
	const char *host = emu_req_header(r, "Host");
	emu_buf_puts(&b, "http://");
	emu_buf_puts(&b, s_host_header_ok(host) ? host : g_cfg.host_port);
	emu_buf_path(&b, r->full_path);
	if (with_query && r->query[0]) {
		emu_buf_puts(&b, "?");
		emu_buf_puts(&b, r->query);
	}
	return emu_buf_take(&b);
}

char *emu_req_local_url(const struct emu_req *r)
{
	struct emu_buf b = { 0 };
	emu_buf_path(&b, r->full_path);
	if (r->query[0]) {
		emu_buf_puts(&b, "?");
		emu_buf_puts(&b, r->query);
	}
	return emu_buf_take(&b);
}

/* ---- responses --------------------------------------------------------- */

void emu_add_header(struct emu_req *r, const char *name, const char *fmt, ...)
{
	if (r->nheaders >= EMU_MAX_HEADERS)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *v = NULL;
	int n = vasprintf(&v, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Header injection guard: values never carry CR or LF. */
	for (char *p = v; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	r->headers[r->nheaders].name = name;
	r->headers[r->nheaders].value = v;
	r->nheaders++;
}

void emu_send(struct emu_req *r, int status, const char *content_type,
	      const char *body, size_t len)
{
	char cl[32];
	if (r->responded)
		return;
	r->responded = true;
	r->status = status;
	emu_log_request(r);
	mg_response_header_start(r->conn, status);
	if (content_type)
		mg_response_header_add(r->conn, "Content-Type", content_type, -1);
	snprintf(cl, sizeof cl, "%zu", len);
	mg_response_header_add(r->conn, "Content-Length", cl, -1);
	mg_response_header_add(r->conn, "X-Content-Type-Options", "nosniff", -1);
	for (size_t i = 0; i < r->nheaders; i++)
		mg_response_header_add(r->conn, r->headers[i].name, r->headers[i].value, -1);
	mg_response_header_send(r->conn);
	if (len && strcmp(r->method, "HEAD") != 0)
		mg_write(r->conn, body, len);
}

void emu_send_json(struct emu_req *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s) {
		static const char oom[] = "{\"errors\":[{\"context\":null,\"message\":\"out of memory\",\"exceptionName\":null}]}";
		emu_send(r, 500, "application/json;charset=UTF-8", oom, sizeof oom - 1);
		return;
	}
	emu_send(r, status, "application/json;charset=UTF-8", s, strlen(s));
	free(s);
}

json_t *emu_json_text(const char *s)
{
	json_t *j = json_string(s ? s : "");
	if (j)
		return j;
	/* Bytes from the wire need not be UTF-8; JSON text must be. */
	char *copy = strdup(s);
	if (!copy)
		return json_null();
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j ? j : json_null();
}

void emu_send_errors(struct emu_req *r, int status, const char *message,
		     const char *exception)
{
	json_t *err = json_pack("{s:n, s:o, s:o}", "context", "message", emu_json_text(message),
				"exceptionName",
				exception ? json_string(exception) : json_null());
	emu_send_json(r, status, json_pack("{s:[o]}", "errors", err));
}

void emu_send_jersey404(struct emu_req *r)
{
	char *url = emu_req_url(r, true);
	char *msg = NULL;
	if (url && asprintf(&msg, "null for uri: %s", url) < 0)
		msg = NULL;
	emu_send_json(r, 404, json_pack("{s:o, s:i}", "message",
					emu_json_text(msg ? msg : "null for uri"), "status-code", 404));
	free(msg);
	free(url);
}

void emu_send_html(struct emu_req *r, int status, const char *html)
{
	/* No inline script anywhere; forms may post back and then redirect to
	 * the client's callback, so form-action is deliberately not limited. */
	emu_add_header(r, "Content-Security-Policy",
		       "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
	emu_add_header(r, "X-Frame-Options", "DENY");
	emu_add_header(r, "Cache-Control", "no-store");
	emu_send(r, status, "text/html;charset=UTF-8", html, strlen(html));
}

void emu_redirect(struct emu_req *r, const char *location)
{
	emu_add_header(r, "Location", "%s", location);
	emu_add_header(r, "Cache-Control", "no-store");
	emu_send(r, 302, "text/html;charset=UTF-8", "", 0);
}

void emu_send_405(struct emu_req *r, const char *allow)
{
	emu_add_header(r, "Allow", "%s", allow);
	emu_send_errors(r, 405, "Method not allowed", NULL);
}
