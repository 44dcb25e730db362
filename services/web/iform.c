/* The integration form's model and validation (iform.h). */
#include "iform.h"

#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_LEN IFORM_ERR_LEN

int iform_init(iform_t *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->platform, sizeof f->platform, "bitbucket-dc");
    f->oauth_version = 2;
    f->ca_pem = calloc(1, ADMIN_MAX_CA_PEM + 1);
    return f->ca_pem ? 0 : -1;
}

void iform_free(iform_t *f)
{
    free(f->ca_pem);
    f->ca_pem = NULL;
}

bool iform_has_errors(const iform_t *f)
{
    return f->e_base[0] || f->e_oauth[0] || f->e_client_id[0] || f->e_secret[0] || f->e_name[0] || f->e_ca[0] ||
           f->e_top[0];
}

/* A positive decimal id, or 0. */
static int64_t s_parse_id(const char *s)
{
    int64_t id = 0;
    int digits = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || ++digits > 15)
            return 0;
        id = id * 10 + (*s - '0');
    }
    return id;
}

/* Copy-and-paste brings spaces and line ends around values. */
static void s_trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
        i++;
    if (i)
        memmove(s, s + i, n - i + 1);
}

/* Read a field with its size limit (limit: how to say it, or NULL for the
 * number of characters); a value that is too long, or holds a NUL, is an
 * error next to the field, and no part of it is kept. */
static void s_read(iform_get_fn get, void *src, const char *name, char *out, size_t size, char *err, const char *label,
                   const char *limit)
{
    int rc = get(src, name, out, size);
    if (rc == WEB_VAR_TOO_LONG) {
        out[0] = '\0';
        if (limit)
            snprintf(err, ERR_LEN, "%s is too long: at most %s.", label, limit);
        else
            snprintf(err, ERR_LEN, "%s is too long: at most %zu characters.", label, size - 1);
    } else if (rc == WEB_VAR_NUL) {
        snprintf(err, ERR_LEN, "%s holds a NUL character, which is not text.", label);
    }
}

static void s_field(iform_get_fn get, void *src, const char *name, char *out, size_t size, char *err, const char *label)
{
    s_read(get, src, name, out, size, err, label, NULL);
}

static void s_ca_field(iform_t *f, iform_get_fn get, void *src)
{
    s_read(get, src, "ca_cert", f->ca_pem, ADMIN_MAX_CA_PEM + 1, f->e_ca, "The CA certificate", "64 KiB");
}

static void s_check_base(iform_t *f)
{
    char why[200];
    if (f->e_base[0])
        return;
    if (!f->base_url[0]) {
        snprintf(f->e_base, sizeof f->e_base, "Enter the base URL, for example https://git.example.com/bitbucket.");
        return;
    }
    if (url_normalize_base(f->base_url, f->base_norm, sizeof f->base_norm, why, sizeof why) < 0) {
        snprintf(f->e_base, sizeof f->e_base, "%s", why);
        f->base_ok = false;
        return;
    }
    f->base_ok = true;
}

static void s_check_ca(iform_t *f)
{
    if (f->e_ca[0] || !f->ca_pem[0])
        return;
    if (!strstr(f->ca_pem, "-----BEGIN CERTIFICATE-----") || !strstr(f->ca_pem, "-----END CERTIFICATE-----"))
        snprintf(f->e_ca, sizeof f->e_ca,
                 "Paste the certificate in PEM form, from -----BEGIN CERTIFICATE----- to -----END CERTIFICATE-----.");
}

/* The first-step fields: platform, base URL, OAuth version, plus the id. */
void iform_read_step1(iform_t *f, iform_get_fn get, void *src)
{
    char v[32];
    if (get(src, "id", v, sizeof v) > 0)
        f->id = s_parse_id(v);
    if (get(src, "platform", f->platform, sizeof f->platform) <= 0 || strcmp(f->platform, "bitbucket-dc") != 0)
        snprintf(f->platform, sizeof f->platform, "bitbucket-dc"); /* the only platform */
    s_field(get, src, "base_url", f->base_url, sizeof f->base_url, f->e_base, "The base URL");
    s_trim(f->base_url);
    f->oauth_version = 2;
    if (get(src, "oauth_version", v, sizeof v) > 0) {
        if (!strcmp(v, "1"))
            f->oauth_version = 1;
        else if (strcmp(v, "2") != 0)
            snprintf(f->e_oauth, sizeof f->e_oauth, "Choose OAuth 2 or OAuth 1.");
    }
    s_check_base(f);
}

void iform_read_create(iform_t *f, char *secret, size_t secret_size, iform_get_fn get, void *src)
{
    iform_read_step1(f, get, src);
    s_field(get, src, "client_id", f->client_id, sizeof f->client_id, f->e_client_id, "The client ID");
    s_trim(f->client_id);
    s_field(get, src, "client_secret", secret, secret_size, f->e_secret, "The client secret");
    s_trim(secret);
    f->secret_typed = secret[0] != '\0';
    s_field(get, src, "name", f->name, sizeof f->name, f->e_name, "The display name");
    s_trim(f->name);
    s_ca_field(f, get, src);
    s_trim(f->ca_pem);
    char v[8];
    f->accept_warning = get(src, "accept_warning", v, sizeof v) > 0 && !strcmp(v, "1");
    if (f->oauth_version == 2) {
        if (!f->client_id[0] && !f->e_client_id[0])
            snprintf(f->e_client_id, sizeof f->e_client_id,
                     "Enter the client ID that Bitbucket showed when you saved the application link.");
        if (!secret[0] && !f->e_secret[0])
            snprintf(f->e_secret, sizeof f->e_secret,
                     "Enter the client secret that Bitbucket showed next to the client ID.");
    }
    s_check_ca(f);
    if (f->id <= 0)
        snprintf(f->e_top, sizeof f->e_top, "This form has expired. Open Add Integration again.");
}

void iform_read_edit(iform_t *f, char *secret, size_t secret_size, iform_get_fn get, void *src)
{
    s_field(get, src, "name", f->name, sizeof f->name, f->e_name, "The display name");
    s_trim(f->name);
    s_field(get, src, "base_url", f->base_url, sizeof f->base_url, f->e_base, "The base URL");
    s_trim(f->base_url);
    s_check_base(f);
    s_field(get, src, "client_id", f->client_id, sizeof f->client_id, f->e_client_id, "The client ID");
    s_trim(f->client_id);
    s_field(get, src, "client_secret", secret, secret_size, f->e_secret, "The client secret");
    s_trim(secret);
    /* The form always sends the CA field, empty to clear it; a request
     * without it leaves the stored one as it was. */
    char probe[1];
    if (get(src, "ca_cert", probe, sizeof probe) != WEB_VAR_ABSENT) {
        s_ca_field(f, get, src);
        s_trim(f->ca_pem);
        s_check_ca(f);
    }
    if (!f->name[0] && !f->e_name[0])
        snprintf(f->e_name, sizeof f->e_name, "Enter a display name.");
    if (f->oauth_version == 2 && !f->client_id[0] && !f->e_client_id[0])
        snprintf(f->e_client_id, sizeof f->e_client_id, "Enter the client ID from the application link.");
}

/* Map a failed integration.check onto the form: which field, and what the
 * admin should do about it. What belongs to no field goes to e_top. */
void iform_check_failed(iform_t *f, const bus_error_t *err)
{
    int d = err->detail;
    switch (err->code) {
    case PORTICO__ERROR_CODE__UNAVAILABLE:
        if (d == DETAIL(UNREACHABLE))
            snprintf(f->e_base, sizeof f->e_base,
                     "Portico could not connect to this address. Check the host name and port, and that the "
                     "machine running Portico can reach it (firewall, proxy, DNS).");
        else
            snprintf(f->e_top, sizeof f->e_top,
                     "Portico could not check the instance: one of its services is not running. Ask your operator "
                     "to look at the Status page, then press Create Integration again.");
        break;
    case PORTICO__ERROR_CODE__UPSTREAM:
    case PORTICO__ERROR_CODE__UNAUTHORIZED:
    case PORTICO__ERROR_CODE__FORBIDDEN:
        if (d == DETAIL(ADDRESS_REFUSED))
            snprintf(f->e_base, sizeof f->e_base,
                     "Portico does not connect to this address: it is loopback, link-local, multicast or one of "
                     "Portico's own services (%s).",
                     err->message);
        else if (d == DETAIL(NOT_BITBUCKET) || err->code != PORTICO__ERROR_CODE__UPSTREAM)
            snprintf(f->e_base, sizeof f->e_base,
                     "This address answered, but not as Bitbucket Data Center / Server: it gave no Bitbucket "
                     "version at /rest/api/1.0/application-properties. Check the URL, including the context path "
                     "(for example /bitbucket).");
        else
            snprintf(f->e_base, sizeof f->e_base,
                     "Bitbucket answered with an error (%s). Check the URL and that the instance is healthy.",
                     err->message);
        break;
    case PORTICO__ERROR_CODE__TLS:
        snprintf(f->e_base, sizeof f->e_base,
                 "Portico could not verify this instance's HTTPS certificate. If Bitbucket uses a certificate from "
                 "your own certificate authority, paste that CA certificate below.");
        snprintf(f->e_ca, sizeof f->e_ca,
                 "Paste the PEM certificate of the authority that signed Bitbucket's certificate%s.",
                 f->ca_pem[0] ? ": the one given did not verify it" : "");
        break;
    case PORTICO__ERROR_CODE__TIMEOUT:
        snprintf(f->e_base, sizeof f->e_base,
                 "The instance did not answer in time. Check that it is up and reachable, then try again.");
        break;
    case PORTICO__ERROR_CODE__BAD_REQUEST:
        if (d == DETAIL(OAUTH2_TOO_OLD))
            snprintf(f->e_oauth, sizeof f->e_oauth,
                     "This Bitbucket is older than 7.21 and has no OAuth 2 application links. Choose OAuth 1, "
                     "or upgrade Bitbucket.");
        else if (d == DETAIL(CA_CERT))
            snprintf(f->e_ca, sizeof f->e_ca, "%s", err->message[0] ? err->message : "This certificate is not valid.");
        else
            snprintf(f->e_base, sizeof f->e_base, "%s", err->message[0] ? err->message : "This URL is not valid.");
        break;
    default:
        snprintf(f->e_top, sizeof f->e_top, "Portico could not check the instance (%s). Try again.",
                 err->message[0] ? err->message : bus_code_name(err->code));
        break;
    }
}

/* A registry refusal: BAD_REQUEST names the field in detail. */
void iform_store_failed(iform_t *f, const bus_error_t *err)
{
    int d = err->detail;
    const char *m = err->message[0] ? err->message : "This value was refused.";
    if (err->code == PORTICO__ERROR_CODE__BAD_REQUEST || err->code == PORTICO__ERROR_CODE__CONFLICT) {
        if (d == DETAIL(BASE_URL) || d == DETAIL(DUPLICATE))
            snprintf(f->e_base, sizeof f->e_base, "%s", m);
        else if (d == DETAIL(CLIENT_ID))
            snprintf(f->e_client_id, sizeof f->e_client_id, "%s", m);
        else if (d == DETAIL(CLIENT_SECRET))
            snprintf(f->e_secret, sizeof f->e_secret, "%s", m);
        else if (d == DETAIL(NAME))
            snprintf(f->e_name, sizeof f->e_name, "%s", m);
        else if (d == DETAIL(CA_CERT))
            snprintf(f->e_ca, sizeof f->e_ca, "%s", m);
        else if (err->code == PORTICO__ERROR_CODE__CONFLICT)
            snprintf(f->e_top, sizeof f->e_top, "%s", m);
        else
            snprintf(f->e_top, sizeof f->e_top, "The integration was refused: %s", m);
    } else if (err->code == PORTICO__ERROR_CODE__NOT_FOUND) {
        snprintf(f->e_top, sizeof f->e_top,
                 "This form has expired. Open Add Integration again; the callback URL will change, so update it in "
                 "Bitbucket too.");
    } else {
        snprintf(f->e_top, sizeof f->e_top, "The integration could not be saved (%s). Try again.",
                 err->message[0] ? err->message : bus_code_name(err->code));
    }
}

/* The default display name: the host (and context path) of the base URL. */
void iform_default_name(const char *base, char *out, size_t out_size)
{
    const char *p = strstr(base, "://");
    snprintf(out, out_size, "%s", p ? p + 3 : base);
}

/* The broker warns about OAuth 1 on Bitbucket 8 and newer; say it in the
 * form's words, and pass any other warning through (it is safe to show). */
void iform_oauth1_warning(iform_t *f, const char *version, const char *broker_warning)
{
    if (atoi(version) >= 8 || !broker_warning[0])
        snprintf(f->warning, sizeof f->warning,
                 "This is Bitbucket %s. From Bitbucket 8 on, OAuth 1 application links can no longer be used for "
                 "synchronisation. Logging in with OAuth 1 still works, but OAuth 2 is the better choice here. "
                 "To keep OAuth 1, tick the box and press Create Integration again.",
                 version[0] ? version : "8 or newer");
    else
        snprintf(f->warning, sizeof f->warning, "%s To keep OAuth 1, tick the box and press Create Integration again.",
                 broker_warning);
}

/* Test results as short fixed codes, so a redirect can carry them. */
const char *iform_test_code(const bus_error_t *err)
{
    switch (err->code) {
    case PORTICO__ERROR_CODE__UNAVAILABLE:
        return (err->detail != DETAIL(UNREACHABLE)) ? "service" : "unreachable";
    case PORTICO__ERROR_CODE__UPSTREAM:
        return "not_bitbucket";
    case PORTICO__ERROR_CODE__TLS:
        return "tls";
    case PORTICO__ERROR_CODE__TIMEOUT:
        return "timeout";
    case PORTICO__ERROR_CODE__BAD_REQUEST:
    case PORTICO__ERROR_CODE__UNAUTHORIZED:
        /* OAuth 1: the broker names Bitbucket's oauth_problem. */
        if (err->detail == DETAIL(CONSUMER_KEY_UNKNOWN) || err->detail == DETAIL(SIGNATURE_INVALID))
            return "oauth1_link";
        if (err->detail == DETAIL(TIMESTAMP_REFUSED))
            return "clock";
        return (err->detail != DETAIL(OAUTH2_TOO_OLD)) ? "failed" : "too_old";
    default:
        return "failed";
    }
}
