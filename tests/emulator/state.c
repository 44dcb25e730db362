/*
 * --state FILE: the application links (OAuth 2 client credentials and
 * OAuth 1 consumers) survive a restart, as a real Bitbucket's do. Without
 * it, a restarted emulator refused every authorize of the integrations an
 * operator (or a test) had set up against it. Issued codes and tokens,
 * browser sessions and admin-API changes to users stay in memory: a
 * restart signs everyone out of Bitbucket, and Portico's next login
 * brings new tokens.
 *
 * The file is JSON, rewritten whole (temporary file, fsync, rename) after
 * each new link, with mode 0600: it holds client secrets.
 */
#include "emulator.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *s_str(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

/* The public key as PEM text (malloc'd), or NULL. */
static char *s_pem(EVP_PKEY *pkey)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL, *data;
	if (b && PEM_write_bio_PUBKEY(b, pkey) == 1) {
		long n = BIO_get_mem_data(b, &data);
		out = n > 0 ? strndup(data, (size_t)n) : NULL;
	}
	BIO_free(b);
	return out;
}

static json_t *s_to_json(void)
{
	json_t *links = json_array(), *consumers = json_array();
	for (size_t i = 0; i < emu_applink_count(); i++) {
		const struct emu_applink *a = emu_applink_at(i);
		json_array_append_new(links, json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", a->name,
						       "client_id", a->client_id, "client_secret",
						       a->client_secret, "redirect_url", a->redirect_url,
						       "perms", (json_int_t)a->perms));
	}
	for (size_t i = 0; i < emu_consumer_count(); i++) {
		const struct emu_consumer *c = emu_consumer_at(i);
		char *pem = s_pem(c->pkey);
		if (!pem)
			continue;
		json_array_append_new(consumers,
				      json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", c->name, "key",
						c->key, "callback", c->callback, "link_name", c->link_name,
						"link_url", c->link_url, "public_key", pem));
		free(pem);
	}
	return json_pack("{s:i, s:o, s:o}", "version", 1, "applinks", links, "consumers", consumers);
}

int emu_state_save(void)
{
	if (!g_cfg.state[0])
		return 0;
	char tmp[sizeof g_cfg.state + 8];
	snprintf(tmp, sizeof tmp, "%s.new", g_cfg.state);
	json_t *doc = s_to_json();
	char *text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
	json_decref(doc);
	int rc = -1, fd = -1;
	if (!text)
		goto out;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		off += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	rc = rename(tmp, g_cfg.state);
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0) {
		fprintf(stderr, "bitbucket-emulator: cannot write the state file %s: %s\n", g_cfg.state,
			strerror(errno));
		unlink(tmp);
	}
	free(text);
	return rc;
}

int emu_state_load(void)
{
	if (!g_cfg.state[0])
		return 0;
	struct stat st;
	if (stat(g_cfg.state, &st) != 0) {
		if (errno == ENOENT)
			return 0; /* the first start: made with the first link */
		fprintf(stderr, "bitbucket-emulator: cannot read the state file %s: %s\n", g_cfg.state,
			strerror(errno));
		return -1;
	}
	json_error_t jerr;
	json_t *doc = json_load_file(g_cfg.state, 0, &jerr);
	if (!json_is_object(doc)) {
		fprintf(stderr, "bitbucket-emulator: the state file %s is not readable JSON (line %d: %s)\n",
			g_cfg.state, jerr.line, jerr.text);
		json_decref(doc);
		return -1;
	}
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(doc, "applinks"), i, v) {
		struct emu_applink *a = emu_applink_add();
		if (!a)
			break;
		snprintf(a->name, sizeof a->name, "%s", s_str(v, "name"));
		snprintf(a->client_id, sizeof a->client_id, "%s", s_str(v, "client_id"));
		snprintf(a->client_secret, sizeof a->client_secret, "%s", s_str(v, "client_secret"));
		snprintf(a->redirect_url, sizeof a->redirect_url, "%s", s_str(v, "redirect_url"));
		a->perms = (unsigned)json_integer_value(json_object_get(v, "perms"));
	}
	json_array_foreach(json_object_get(doc, "consumers"), i, v) {
		EVP_PKEY *pkey = emu_rsa_public_key_from_pem(s_str(v, "public_key"));
		struct emu_consumer *c = pkey ? emu_consumer_add() : NULL;
		if (!c) {
			EVP_PKEY_free(pkey);
			continue;
		}
		snprintf(c->name, sizeof c->name, "%s", s_str(v, "name"));
		snprintf(c->key, sizeof c->key, "%s", s_str(v, "key"));
		snprintf(c->callback, sizeof c->callback, "%s", s_str(v, "callback"));
		snprintf(c->link_name, sizeof c->link_name, "%s", s_str(v, "link_name"));
		snprintf(c->link_url, sizeof c->link_url, "%s", s_str(v, "link_url"));
		c->pkey = pkey;
	}
	json_decref(doc);
	return 0;
}
