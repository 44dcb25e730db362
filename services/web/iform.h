/* iform: the integration form's model and validation, apart from markup
 * and HTTP: Add Integration (two steps), Create, and Edit read their
 * fields through iform_get_fn, so the rules are tested without a request
 * (tests/unit/test_iform.c). The pages are templates/integration_*.html;
 * admin_integrations.c is the controller between them. */
#ifndef PORTICO_WEB_IFORM_H
#define PORTICO_WEB_IFORM_H

#include "bus.h"
#include "formvar.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Size limits of the admin forms (bytes, before the terminating NUL). */
#define ADMIN_MAX_BASE_URL 2000
#define ADMIN_MAX_CLIENT_ID 256
#define ADMIN_MAX_CLIENT_SECRET 512
#define ADMIN_MAX_NAME 200
#define ADMIN_MAX_CA_PEM (64 * 1024)

#define IFORM_ERR_LEN 400

typedef struct {
    int64_t id;
    char platform[32];
    char base_url[ADMIN_MAX_BASE_URL + 1];
    char base_norm[ADMIN_MAX_BASE_URL + 64];
    bool base_ok;
    int oauth_version;
    char client_id[ADMIN_MAX_CLIENT_ID + 1];
    char name[ADMIN_MAX_NAME + 1];
    char *ca_pem; /* heap: up to ADMIN_MAX_CA_PEM bytes */
    bool accept_warning;
    bool secret_typed; /* the user typed a secret that we do not send back */
    /* What is wrong, next to each field ("" when nothing), and above all. */
    char e_base[IFORM_ERR_LEN], e_oauth[IFORM_ERR_LEN], e_client_id[IFORM_ERR_LEN], e_secret[IFORM_ERR_LEN],
        e_name[IFORM_ERR_LEN], e_ca[IFORM_ERR_LEN], e_top[IFORM_ERR_LEN];
    char warning[IFORM_ERR_LEN]; /* OAuth 1 on a Bitbucket that discourages it */
} iform_t;

/* Where fields come from: the decoded value's length, or a WEB_VAR_*
 * (as web_form). */
typedef int (*iform_get_fn)(void *src, const char *name, char *out, size_t out_size);

/* 0, or -1 when out of memory. */
int iform_init(iform_t *f);
void iform_free(iform_t *f);
bool iform_has_errors(const iform_t *f);

/* The first step: id, platform, base URL, OAuth version. */
void iform_read_step1(iform_t *f, iform_get_fn get, void *src);
/* Create Integration: step 1 plus the credentials, name and CA; secret
 * receives the client secret (never kept in the form). */
void iform_read_create(iform_t *f, char *secret, size_t secret_size, iform_get_fn get, void *src);
/* Edit: name, base URL, client ID and secret, CA. f->oauth_version must
 * be the integration's, and f->ca_pem its CA: a request without the CA
 * field keeps it (an empty one clears it). */
void iform_read_edit(iform_t *f, char *secret, size_t secret_size, iform_get_fn get, void *src);

/* A failed integration.check (broker) or a refused store (registry), put
 * next to the field it concerns. */
void iform_check_failed(iform_t *f, const bus_error_t *err);
void iform_store_failed(iform_t *f, const bus_error_t *err);
/* The broker's OAuth 1 warning, in the form's words. */
void iform_oauth1_warning(iform_t *f, const char *version, const char *broker_warning);
/* The display name when none was given: host and path of the base URL. */
void iform_default_name(const char *base, char *out, size_t out_size);
/* A failed Test connection as a short fixed code a redirect can carry. */
const char *iform_test_code(const bus_error_t *err);

#endif
