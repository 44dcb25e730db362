/* Integrations: Add Integration (a two-step form without JavaScript, one
 * step with it), Create Integration, the integration page, edit, Test
 * connection, enable/disable and delete.
 *
 * The Add Integration form reserves the integration's id on its first GET,
 * so the callback URL it shows is the one the login flow will use; the id
 * travels in a hidden field until Create Integration. Before anything is
 * stored, the broker checks the base URL against the real instance. */
#include "admin.h"
#include "admin_access.h"

#include "log.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_LEN 400

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
    char e_base[ERR_LEN], e_oauth[ERR_LEN], e_client_id[ERR_LEN], e_secret[ERR_LEN], e_name[ERR_LEN], e_ca[ERR_LEN],
        e_top[ERR_LEN];
    char warning[ERR_LEN];
} iform_t;

static int s_form_init(iform_t *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->platform, sizeof f->platform, "bitbucket-dc");
    f->oauth_version = 2;
    f->ca_pem = calloc(1, ADMIN_MAX_CA_PEM + 1);
    return f->ca_pem ? 0 : -1;
}

static void s_form_free(iform_t *f)
{
    free(f->ca_pem);
    f->ca_pem = NULL;
}

static bool s_form_has_errors(const iform_t *f)
{
    return f->e_base[0] || f->e_oauth[0] || f->e_client_id[0] || f->e_secret[0] || f->e_name[0] || f->e_ca[0] ||
           f->e_top[0];
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

/* Read a field with its size limit; a value that is too long is an error
 * next to the field, and no part of it is kept. */
static void s_field(web_req_t *r, const char *name, char *out, size_t size, char *err, const char *label)
{
    if (web_form(r, name, out, size) == -2) {
        out[0] = '\0';
        snprintf(err, ERR_LEN, "%s is too long: at most %zu characters.", label, size - 1);
    }
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
static void s_read_step1(web_req_t *r, iform_t *f)
{
    char v[32];
    if (web_form(r, "id", v, sizeof v) > 0)
        f->id = admin_parse_id(v);
    if (web_form(r, "platform", f->platform, sizeof f->platform) <= 0 || strcmp(f->platform, "bitbucket-dc") != 0)
        snprintf(f->platform, sizeof f->platform, "bitbucket-dc"); /* the only platform */
    s_field(r, "base_url", f->base_url, sizeof f->base_url, f->e_base, "The base URL");
    s_trim(f->base_url);
    f->oauth_version = 2;
    if (web_form(r, "oauth_version", v, sizeof v) > 0) {
        if (!strcmp(v, "1"))
            f->oauth_version = 1;
        else if (strcmp(v, "2") != 0)
            snprintf(f->e_oauth, sizeof f->e_oauth, "Choose OAuth 2 or OAuth 1.");
    }
    s_check_base(f);
}

/* ---- rendering the Add Integration form ---- */

static void s_error(sbuf_t *b, const char *id, const char *text)
{
    if (!text || !text[0])
        return;
    sbuf_printf(b, "<p class=\"field-error\" id=\"%s\">", id);
    sbuf_html(b, text);
    sbuf_puts(b, "</p>");
}

static void s_describedby(sbuf_t *b, const char *hint_id, const char *err_id, const char *err)
{
    sbuf_printf(b, " aria-describedby=\"%s%s%s\"%s", hint_id, err[0] ? " " : "", err[0] ? err_id : "",
                err[0] ? " aria-invalid=\"true\"" : "");
}

static void s_applinks_href(sbuf_t *b, const char *base)
{
    sbuf_html(b, base);
    sbuf_puts(b, "/plugins/servlet/applinks/listApplicationLinks");
}

static void s_oauth_instructions(sbuf_t *b, int shown_version)
{
    sbuf_printf(b,
                "<div class=\"howto\" data-oauth=\"2\"%s><h3>In Bitbucket (OAuth 2)</h3><ol>"
                "<li>Open the application links page above (you need Bitbucket admin rights) and press "
                "<em>Create link</em>.</li>"
                "<li>Choose <em>External application</em> as the type and <em>Incoming</em> as the "
                "direction, then continue.</li>"
                "<li>Give the link a name people will recognise, such as Portico, and paste the callback "
                "URL shown above into <em>Redirect URL</em>.</li>"
                "<li>Under application permissions tick <em>Repositories: Read</em> and nothing more, then "
                "save.</li>"
                "<li>Bitbucket now shows a client ID and a client secret. Copy them into the two fields "
                "below.</li></ol></div>",
                shown_version == 2 ? "" : " hidden");
    sbuf_printf(b,
                "<div class=\"howto\" data-oauth=\"1\"%s><h3>In Bitbucket (OAuth 1)</h3><ol>"
                "<li>Press <em>Create Integration</em> first: Portico then makes an RSA key pair and a "
                "consumer key for this integration and shows them on the integration's page.</li>"
                "<li>On the application links page above, create a link to Portico's address (on 7.21 and "
                "newer pick <em>Atlassian product</em>; older versions create a generic application). Only "
                "a name is needed.</li>"
                "<li>Edit the new link, open <em>Incoming Authentication</em>, and paste the Consumer Key and "
                "the Public Key from Portico. Leave the consumer callback URL empty.</li></ol>"
                "<p class=\"hint\">No client ID or secret is needed for OAuth 1.</p></div>",
                shown_version == 1 ? "" : " hidden");
}

static void s_render_form(web_req_t *r, const admin_ctx_t *a, const iform_t *f, bool step2, int status)
{
    char callback[700];
    admin_callback_url(f->id, callback, sizeof callback);
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, a, "Add Integration", "integrations");
    sbuf_puts(&b, "<h1>Add Integration</h1><p class=\"lead\">Connect a Bitbucket Data Center / Server instance "
                  "so people can log in to Portico with their Bitbucket account.</p>");
    if (f->e_top[0])
        page_notice(&b, "error", f->e_top);
    else if (s_form_has_errors(f))
        page_notice(&b, "error",
                    "The integration was not created. Correct the fields marked below and send the "
                    "form again.");
    sbuf_printf(&b,
                "<form id=\"integration-form\" class=\"card form\" method=\"post\" "
                "action=\"%s/admin/integrations\" novalidate>",
                web_cfg.public_path);
    page_csrf(&b, r);
    sbuf_printf(&b, "<input type=\"hidden\" name=\"id\" value=\"%lld\">", (long long)f->id);

    sbuf_puts(&b, "<div class=\"field\"><label for=\"platform\">Platform</label>"
                  "<select id=\"platform\" name=\"platform\"><option value=\"bitbucket-dc\" selected>"
                  "Bitbucket Data Center / Server</option></select></div>");

    sbuf_puts(&b, "<div class=\"field\"><label for=\"base-url\">Base URL</label><input type=\"url\" id=\"base-url\" "
                  "name=\"base_url\" inputmode=\"url\" autocomplete=\"off\" spellcheck=\"false\" "
                  "placeholder=\"https://git.example.com/bitbucket\" value=\"");
    sbuf_html(&b, f->base_url);
    sbuf_printf(&b, "\" maxlength=\"%d\"", ADMIN_MAX_BASE_URL);
    s_describedby(&b, "base-url-hint", "base-url-error", f->e_base);
    sbuf_puts(&b, "><p class=\"hint\" id=\"base-url-hint\">The address of your Bitbucket as people open it in the "
                  "browser, with its context path if it has one (such as <code>/bitbucket</code>).</p>");
    s_error(&b, "base-url-error", f->e_base);
    sbuf_puts(&b, "</div>");

    sbuf_puts(&b, "<div class=\"field\"><label for=\"oauth-version\">OAuth version</label>"
                  "<select id=\"oauth-version\" name=\"oauth_version\"");
    s_describedby(&b, "oauth-version-hint", "oauth-version-error", f->e_oauth);
    sbuf_printf(&b, "><option value=\"2\"%s>OAuth 2</option><option value=\"1\"%s>OAuth 1</option></select>",
                f->oauth_version == 2 ? " selected" : "", f->oauth_version == 1 ? " selected" : "");
    sbuf_puts(&b, "<p class=\"hint\" id=\"oauth-version-hint\">OAuth 2 needs Bitbucket 7.21 or newer. Choose "
                  "OAuth 1 only for older versions.</p>");
    s_error(&b, "oauth-version-error", f->e_oauth);
    sbuf_puts(&b, "</div>");

    if (!step2)
        sbuf_printf(&b,
                    "<div class=\"no-js step-next\"><button type=\"submit\" class=\"secondary\" "
                    "formaction=\"%s/admin/integrations/new\" name=\"step\" value=\"continue\">Continue</button>"
                    "<p class=\"hint\">Portico then shows the callback URL to register in Bitbucket.</p></div>",
                    web_cfg.public_path);

    sbuf_printf(&b, "<div id=\"callback-block\"%s><h2>Register Portico in Bitbucket</h2>", step2 ? "" : " hidden");
    sbuf_puts(&b, "<div class=\"field\"><label for=\"callback-url\">Callback URL / Redirect URL</label>"
                  "<div class=\"copy-row\"><input type=\"text\" id=\"callback-url\" readonly value=\"");
    sbuf_html(&b, callback);
    sbuf_puts(&b, "\" aria-describedby=\"callback-url-hint\"><button type=\"button\" class=\"secondary js-only\" "
                  "data-copy=\"callback-url\">Copy</button></div><p class=\"hint\" id=\"callback-url-hint\">This "
                  "address belongs to this integration only. Bitbucket sends people back to it after they "
                  "approve.</p></div>");
    sbuf_puts(&b, "<p class=\"applinks\">Application links in Bitbucket: <a id=\"applinks-link\" target=\"_blank\" "
                  "rel=\"noopener noreferrer\" href=\"");
    if (f->base_ok)
        s_applinks_href(&b, f->base_norm);
    else
        sbuf_puts(&b, "#");
    sbuf_puts(&b, "\">");
    if (f->base_ok)
        s_applinks_href(&b, f->base_norm);
    else
        sbuf_puts(&b, "enter the base URL first");
    sbuf_puts(&b, "</a></p>");
    s_oauth_instructions(&b, f->oauth_version);

    sbuf_printf(&b, "<div class=\"oauth2-fields\" data-oauth=\"2\"%s>", f->oauth_version == 2 ? "" : " hidden");
    sbuf_puts(&b, "<div class=\"field\"><label for=\"client-id\">Client ID</label><input type=\"text\" "
                  "id=\"client-id\" name=\"client_id\" autocomplete=\"off\" spellcheck=\"false\" value=\"");
    sbuf_html(&b, f->client_id);
    sbuf_printf(&b, "\" maxlength=\"%d\"", ADMIN_MAX_CLIENT_ID);
    s_describedby(&b, "client-id-hint", "client-id-error", f->e_client_id);
    sbuf_puts(&b, "><p class=\"hint\" id=\"client-id-hint\">Shown by Bitbucket after you save the application "
                  "link.</p>");
    s_error(&b, "client-id-error", f->e_client_id);
    sbuf_puts(&b, "</div><div class=\"field\"><label for=\"client-secret\">Client Secret</label><input "
                  "type=\"password\" id=\"client-secret\" name=\"client_secret\" autocomplete=\"new-password\" "
                  "spellcheck=\"false\"");
    sbuf_printf(&b, " maxlength=\"%d\"", ADMIN_MAX_CLIENT_SECRET);
    s_describedby(&b, "client-secret-hint", "client-secret-error", f->e_secret);
    sbuf_printf(&b, "><p class=\"hint\" id=\"client-secret-hint\">%s</p>",
                f->secret_typed ? "Enter the client secret again: Portico never sends a secret back to the browser."
                                : "Stored encrypted. After this form it is never shown again.");
    s_error(&b, "client-secret-error", f->e_secret);
    sbuf_puts(&b, "</div></div>");

    sbuf_puts(&b, "<details class=\"more\"");
    if (f->name[0] || f->ca_pem[0] || f->e_name[0] || f->e_ca[0])
        sbuf_puts(&b, " open");
    sbuf_puts(&b, "><summary>More options: display name, private CA</summary>");
    sbuf_puts(&b, "<div class=\"field\"><label for=\"display-name\">Display name (optional)</label><input "
                  "type=\"text\" id=\"display-name\" name=\"name\" autocomplete=\"off\" value=\"");
    sbuf_html(&b, f->name);
    sbuf_printf(&b, "\" maxlength=\"%d\"", ADMIN_MAX_NAME);
    s_describedby(&b, "display-name-hint", "display-name-error", f->e_name);
    sbuf_puts(&b, "><p class=\"hint\" id=\"display-name-hint\">Shown on the login page, as in <em>Log in with "
                  "Acme Bitbucket</em>. Defaults to the instance's host name.</p>");
    s_error(&b, "display-name-error", f->e_name);
    sbuf_puts(&b, "</div><div class=\"field\"><label for=\"ca-cert\">CA certificate (optional)</label><textarea "
                  "id=\"ca-cert\" name=\"ca_cert\" spellcheck=\"false\" "
                  "placeholder=\"-----BEGIN CERTIFICATE-----\"");
    s_describedby(&b, "ca-cert-hint", "ca-cert-error", f->e_ca);
    sbuf_puts(&b, ">");
    sbuf_html(&b, f->ca_pem);
    sbuf_puts(&b, "</textarea><p class=\"hint\" id=\"ca-cert-hint\">Only when Bitbucket's HTTPS certificate comes "
                  "from your own certificate authority: paste that CA's certificate in PEM form (at most "
                  "64 KiB).</p>");
    s_error(&b, "ca-cert-error", f->e_ca);
    sbuf_puts(&b, "</div></details>");

    if (f->warning[0]) {
        sbuf_puts(&b, "<div class=\"notice warn\" role=\"alert\" id=\"oauth-warning\">");
        sbuf_html(&b, f->warning);
        sbuf_puts(&b, "<label class=\"check\" for=\"accept-warning\"><input type=\"checkbox\" id=\"accept-warning\" "
                      "name=\"accept_warning\" value=\"1\"> Use OAuth 1 anyway</label></div>");
    }
    sbuf_puts(&b, "<button type=\"submit\" class=\"primary\">Create Integration</button>"
                  "<p class=\"hint\">Portico first checks that the instance answers as Bitbucket and that its "
                  "version suits the chosen OAuth version.</p></div></form>");
    admin_page_end(&b);
    web_send_html(r, status, &b);
    sbuf_free(&b);
}

static int64_t s_reserve_id(web_req_t *r, bus_error_t *err)
{
    Portico__Registry__ReserveIdReply *rep = NULL;
    if (admin_registry(r, &registry_m_integration_reserve_id, NULL, (ProtobufCMessage **)&rep, err) < 0)
        return -1;
    int64_t id = rep->id;
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    if (id <= 0) {
        err->code = PORTICO__ERROR_CODE__INTERNAL;
        snprintf(err->message, sizeof err->message, "no id was reserved");
        return -1;
    }
    return id;
}

/* GET: a fresh form with a reserved id. POST ("Continue", the step without
 * JavaScript): the same form with the callback URL and the remaining
 * fields. Neither changes state beyond reserving the id. */
void admin_integration_new(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    iform_t f;
    if (s_form_init(&f) < 0) {
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        return;
    }
    bool step2 = false;
    int status = 200;
    if (admin_is_post(r)) {
        s_read_step1(r, &f);
        step2 = f.base_ok && !f.e_oauth[0];
        if (!step2)
            status = 400;
    }
    if (f.id <= 0) {
        bus_error_t err;
        f.id = s_reserve_id(r, &err);
        if (f.id < 0) {
            web_bus_error_page(r, &err, "Could not prepare a new integration");
            s_form_free(&f);
            return;
        }
    }
    if (f.base_ok)
        snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
    s_render_form(r, &a, &f, step2, status);
    s_form_free(&f);
}

/* Map a failed integration.check onto the form: which field, and what the
 * admin should do about it. Returns false for errors that belong to no field. */
static void s_check_failed(iform_t *f, const bus_error_t *err)
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
static void s_store_failed(iform_t *f, const bus_error_t *err)
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
static void s_default_name(const char *base, char *out, size_t out_size)
{
    const char *p = strstr(base, "://");
    snprintf(out, out_size, "%s", p ? p + 3 : base);
}

/* The broker warns about OAuth 1 on Bitbucket 8 and newer; say it in the
 * form's words, and pass any other warning through (it is safe to show). */
static void s_oauth1_warning(iform_t *f, const char *version, const char *broker_warning)
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

void admin_integration_create(web_req_t *r)
{
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    if (web_body_failed(r)) {
        web_error_page(r, 413, "Form too large",
                       "The form is larger than Portico accepts (64 KiB in all, CA certificate included).",
                       "Go back, shorten the CA certificate to the one authority that signed Bitbucket's "
                       "certificate, and send the form again.");
        return;
    }
    iform_t f;
    char secret[ADMIN_MAX_CLIENT_SECRET + 1] = "";
    if (s_form_init(&f) < 0) {
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        return;
    }
    s_read_step1(r, &f);
    s_field(r, "client_id", f.client_id, sizeof f.client_id, f.e_client_id, "The client ID");
    s_trim(f.client_id);
    s_field(r, "client_secret", secret, sizeof secret, f.e_secret, "The client secret");
    s_trim(secret);
    f.secret_typed = secret[0] != '\0';
    s_field(r, "name", f.name, sizeof f.name, f.e_name, "The display name");
    s_trim(f.name);
    if (web_form(r, "ca_cert", f.ca_pem, ADMIN_MAX_CA_PEM + 1) == -2) {
        f.ca_pem[0] = '\0';
        snprintf(f.e_ca, sizeof f.e_ca, "The CA certificate is too long: at most 64 KiB.");
    }
    s_trim(f.ca_pem);
    char v[8];
    f.accept_warning = web_form(r, "accept_warning", v, sizeof v) > 0 && !strcmp(v, "1");
    if (f.oauth_version == 2) {
        if (!f.client_id[0] && !f.e_client_id[0])
            snprintf(f.e_client_id, sizeof f.e_client_id,
                     "Enter the client ID that Bitbucket showed when you saved the application link.");
        if (!secret[0] && !f.e_secret[0])
            snprintf(f.e_secret, sizeof f.e_secret,
                     "Enter the client secret that Bitbucket showed next to the client ID.");
    }
    s_check_ca(&f);
    if (f.id <= 0)
        snprintf(f.e_top, sizeof f.e_top, "This form has expired. Open Add Integration again.");

    int status = 400;
    Portico__Broker__CheckIntegrationReply *chk = NULL;
    if (s_form_has_errors(&f))
        goto render;

    Portico__Broker__CheckIntegrationRequest creq = PORTICO__BROKER__CHECK_INTEGRATION_REQUEST__INIT;
    creq.base_url = f.base_norm;
    creq.ca_cert_pem = f.ca_pem;
    creq.oauth_version = f.oauth_version;
    creq.actor = a.actor;
    bus_error_t err;
    if (admin_broker(r, &broker_m_integration_check, &creq.base, (ProtobufCMessage **)&chk, &err) < 0) {
        char q[100];
        log_info("integration check failed", "code=%s detail=%s", bus_code_name(err.code),
                 log_quote(bus_detail_name(err.detail), q, sizeof q));
        s_check_failed(&f, &err);
        status = f.e_top[0] ? 503 : 400;
        goto render;
    }
    if (chk->warning[0] && f.oauth_version == 1 && !f.accept_warning) {
        s_oauth1_warning(&f, chk->version, chk->warning);
        status = 200;
        goto render;
    }

    Portico__Registry__Integration in = PORTICO__REGISTRY__INTEGRATION__INIT;
    char name[ADMIN_MAX_NAME + 1];
    if (f.name[0])
        snprintf(name, sizeof name, "%s", f.name);
    else
        s_default_name(f.base_norm, name, sizeof name);
    in.id = f.id;
    in.platform = f.platform;
    in.name = name;
    in.base_url = f.base_norm;
    in.oauth_version = f.oauth_version;
    in.client_id = f.oauth_version == 2 ? f.client_id : "";
    in.ca_cert_pem = f.ca_pem;
    in.enabled = true;
    in.bitbucket_version = chk->version;
    in.last_test_result = "ok";
    in.last_test_at = bus_now_ms() / 1000;
    in.created_by = a.actor;
    Portico__Registry__CreateIntegrationRequest req = PORTICO__REGISTRY__CREATE_INTEGRATION_REQUEST__INIT;
    req.integration = &in;
    req.client_secret = f.oauth_version == 2 ? secret : "";
    req.actor = a.actor;
    req.addr = r->addr;
    if (admin_registry(r, &registry_m_integration_create, &req.base, NULL, &err) < 0) {
        char q[100];
        log_info("integration create refused", "code=%s detail=%s", bus_code_name(err.code),
                 log_quote(bus_detail_name(err.detail), q, sizeof q));
        s_store_failed(&f, &err);
        status = err.code == PORTICO__ERROR_CODE__CONFLICT ? 409 : 400;
        if (err.code != PORTICO__ERROR_CODE__BAD_REQUEST && err.code != PORTICO__ERROR_CODE__CONFLICT &&
            err.code != PORTICO__ERROR_CODE__NOT_FOUND)
            status = web_status_for(&err);
        goto render;
    }
    /* The check just passed: record it as the first test result. */
    Portico__Registry__SetTestResultRequest tr = PORTICO__REGISTRY__SET_TEST_RESULT_REQUEST__INIT;
    tr.id = f.id;
    tr.bitbucket_version = chk->version;
    tr.result = "ok";
    tr.actor = a.actor;
    if (admin_registry(r, &registry_m_integration_set_test_result, &tr.base, NULL, &err) < 0)
        log_warn("could not record the first test result", "id=%lld code=%s", (long long)f.id, bus_code_name(err.code));
    log_info("integration created", "id=%lld oauth=%d", (long long)f.id, f.oauth_version);
    char loc[64];
    snprintf(loc, sizeof loc, "/admin?created=%lld", (long long)f.id);
    web_redirect(r, loc);
    goto out;

render:
    if (f.base_ok)
        snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
    s_render_form(r, &a, &f, f.base_ok, status);
out:
    if (chk)
        protobuf_c_message_free_unpacked(&chk->base, NULL);
    explicit_bzero(secret, sizeof secret);
    s_form_free(&f);
}

/* ---- the integration page ---- */

static Portico__Registry__GetIntegrationReply *s_get(web_req_t *r, int64_t id)
{
    Portico__Registry__GetIntegrationRequest req = PORTICO__REGISTRY__GET_INTEGRATION_REQUEST__INIT;
    req.id = id;
    Portico__Registry__GetIntegrationReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_integration_get, &req.base, (ProtobufCMessage **)&rep, &err) < 0) {
        if (err.code == PORTICO__ERROR_CODE__NOT_FOUND)
            web_error_page(r, 404, "Integration not found", "There is no integration with this number.",
                           "Go back to the Admin page; it may have been deleted.");
        else
            web_bus_error_page(r, &err, "Could not load the integration");
        return NULL;
    }
    if (!rep->integration) {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        web_error_page(r, 404, "Integration not found", "There is no integration with this number.",
                       "Go back to the Admin page; it may have been deleted.");
        return NULL;
    }
    return rep;
}

/* Test results as short fixed codes, so a redirect can carry them. */
static const char *s_test_code(const bus_error_t *err)
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

static void s_show_flash(sbuf_t *b, web_req_t *r)
{
    static const struct {
        const char *param, *value, *kind, *text;
    } msgs[] = {
        {"created", "1", "ok", "Integration created."},
        {"updated", "1", "ok", "Changes saved."},
        {"enabled", "1", "ok", "Integration enabled: people can log in with it again."},
        {"disabled", "1", "ok", "Integration disabled: nobody can log in with it until it is enabled again."},
        {"tested", "ok", "ok", "Connection works: Bitbucket answered."},
        {"tested", "warn", "warn",
         "Connection works, but this Bitbucket can no longer use OAuth 1 links for "
         "synchronisation. Consider switching to OAuth 2."},
        {"tested", "unreachable", "error",
         "Test failed: Portico could not connect to the base URL. Check that "
         "Bitbucket is up and reachable from Portico."},
        {"tested", "not_bitbucket", "error",
         "Test failed: the base URL did not answer as Bitbucket Data Center / "
         "Server. Check the URL and its context path."},
        {"tested", "tls", "error",
         "Test failed: the HTTPS certificate could not be verified. Set the CA "
         "certificate in Edit."},
        {"tested", "timeout", "error", "Test failed: Bitbucket did not answer in time."},
        {"tested", "too_old", "error", "Test failed: this Bitbucket is older than 7.21 and cannot use OAuth 2."},
        {"tested", "oauth1_link", "error",
         "Test failed: Bitbucket does not know this consumer key / public key yet. Finish the application link's "
         "Incoming Authentication with the Consumer Key and Public Key below."},
        {"tested", "clock", "error",
         "Test failed: Bitbucket refused the time of Portico's request. The clocks of Portico and Bitbucket must "
         "agree: synchronise both with NTP."},
        {"tested", "service", "error", "Test not run: a Portico service is not running. See the Status page."},
        {"tested", "failed", "error", "Test failed. See the last test result below."},
    };
    char v[24];
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++)
        if (web_query(r, msgs[i].param, v, sizeof v) > 0 && !strcmp(v, msgs[i].value)) {
            page_notice(b, msgs[i].kind, msgs[i].text);
            return;
        }
}

static void s_row(sbuf_t *b, const char *label, const char *value)
{
    sbuf_printf(b, "<tr><th scope=\"row\">%s</th><td>", label);
    sbuf_html(b, value && *value ? value : "—");
    sbuf_puts(b, "</td></tr>");
}

static void s_post_button(sbuf_t *b, web_req_t *r, int64_t id, const char *action, const char *label, const char *cls)
{
    sbuf_printf(b, "<form method=\"post\" action=\"%s/admin/integrations/%lld/%s\" class=\"inline\">",
                web_cfg.public_path, (long long)id, action);
    page_csrf(b, r);
    sbuf_printf(b, "<button type=\"submit\" class=\"%s\">%s</button></form>", cls, label);
}

static void s_show(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    Portico__Registry__AccessRules *access = admin_access_load(r, in->id);
    char callback[700], when[40];
    admin_callback_url(in->id, callback, sizeof callback);
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, a, in->name[0] ? in->name : "Integration", "integrations");
    s_show_flash(&b, r);
    sbuf_puts(&b, "<div class=\"title-row\"><h1>");
    sbuf_html(&b, in->name[0] ? in->name : "(unnamed)");
    sbuf_puts(&b, " ");
    admin_integration_state(&b, in);
    sbuf_printf(&b, "</h1><a class=\"button secondary\" href=\"%s/admin/integrations/%lld/edit\">Edit</a></div>",
                web_cfg.public_path, (long long)in->id);

    sbuf_puts(&b, "<section class=\"card\"><h2>Details</h2><table class=\"details\"><tbody>");
    s_row(&b, "Platform", "Bitbucket Data Center / Server");
    s_row(&b, "Base URL", in->base_url);
    s_row(&b, "OAuth version", in->oauth_version == 1 ? "OAuth 1" : "OAuth 2");
    if (in->oauth_version == 2) {
        s_row(&b, "Client ID", in->client_id);
        sbuf_printf(&b, "<tr><th scope=\"row\">Client Secret</th><td>%s</td></tr>",
                    in->has_client_secret ? "<span class=\"masked\" aria-label=\"hidden\">••••••••</span> "
                                            "<span class=\"muted small\">stored encrypted; type a new one in Edit "
                                            "to replace it</span>"
                                          : "<span class=\"muted\">not set</span>");
    }
    s_row(&b, "Bitbucket version", in->bitbucket_version[0] ? in->bitbucket_version : "unknown");
    sbuf_puts(&b, "<tr><th scope=\"row\">Last test</th><td>");
    admin_test_result(&b, in);
    sbuf_puts(&b, "</td></tr>");
    s_row(&b, "CA certificate", in->ca_cert_pem[0] ? "custom CA certificate set" : "the system's trusted CAs");
    char users[32];
    snprintf(users, sizeof users, "%lld", (long long)in->identity_count);
    s_row(&b, "Linked Bitbucket accounts", users);
    admin_access_details_row(&b, access);
    web_format_time(in->created_at, when, sizeof when);
    char by[400];
    snprintf(by, sizeof by, "%s%s%s", when, in->created_by[0] ? " by " : "", in->created_by);
    s_row(&b, "Created", by);
    if (in->updated_at > 0) {
        web_format_time(in->updated_at, when, sizeof when);
        snprintf(by, sizeof by, "%s%s%s", when, in->updated_by[0] ? " by " : "", in->updated_by);
        s_row(&b, "Last changed", by);
    }
    sbuf_puts(&b, "</tbody></table></section>");

    sbuf_puts(&b, "<section class=\"card\"><h2>Bitbucket side</h2><div class=\"field\"><label for=\"callback-url\">"
                  "Callback URL / Redirect URL</label><div class=\"copy-row\"><input type=\"text\" "
                  "id=\"callback-url\" readonly value=\"");
    sbuf_html(&b, callback);
    sbuf_puts(&b, "\"><button type=\"button\" class=\"secondary js-only\" data-copy=\"callback-url\">Copy</button>"
                  "</div></div><p class=\"applinks\">Application links in Bitbucket: <a id=\"applinks-link\" "
                  "target=\"_blank\" rel=\"noopener noreferrer\" href=\"");
    s_applinks_href(&b, in->base_url);
    sbuf_puts(&b, "\">");
    s_applinks_href(&b, in->base_url);
    sbuf_puts(&b, "</a></p>");
    if (in->oauth_version == 1) {
        sbuf_puts(&b, "<p>In Bitbucket, edit the application link to Portico, open <em>Incoming "
                      "Authentication</em>, and paste these two values. Leave the consumer callback URL "
                      "empty.</p><div class=\"field\"><label for=\"consumer-key\">Consumer Key</label>"
                      "<div class=\"copy-row\"><input type=\"text\" id=\"consumer-key\" readonly value=\"");
        sbuf_html(&b, in->consumer_key);
        sbuf_puts(&b, "\"><button type=\"button\" class=\"secondary js-only\" data-copy=\"consumer-key\">Copy</button>"
                      "</div></div><div class=\"field\"><label for=\"public-key\">Public Key</label>"
                      "<textarea id=\"public-key\" readonly rows=\"9\" spellcheck=\"false\">");
        sbuf_html(&b, in->public_key_pem);
        sbuf_puts(&b, "</textarea><button type=\"button\" class=\"secondary js-only\" data-copy=\"public-key\">"
                      "Copy</button></div>");
    }
    sbuf_puts(&b, "</section>");

    admin_access_card(&b, r, in->id, access);

    sbuf_puts(&b, "<section class=\"card\"><h2>Actions</h2><p class=\"hint\">Test connection asks Bitbucket for "
                  "its version with the current settings");
    if (in->oauth_version == 1)
        sbuf_puts(&b, " and for an OAuth 1 request token signed with this integration's key (which shows whether the "
                      "application link's Incoming Authentication is complete)");
    sbuf_puts(&b, ", and records the result.</p><div class=\"actions\">");
    s_post_button(&b, r, in->id, "test", "Test connection", "primary");
    sbuf_printf(&b, "<a class=\"button secondary\" href=\"%s/admin/integrations/%lld/edit\">Edit</a>",
                web_cfg.public_path, (long long)in->id);
    if (in->enabled)
        s_post_button(&b, r, in->id, "disable", "Disable", "secondary");
    else
        s_post_button(&b, r, in->id, "enable", "Enable", "secondary");
    sbuf_printf(&b, "<a class=\"button danger\" href=\"%s/admin/integrations/%lld/delete\">Delete…</a>",
                web_cfg.public_path, (long long)in->id);
    sbuf_puts(&b, "</div></section>");
    admin_tfa_hint(&b);
    admin_page_end(&b);
    admin_access_free(&access);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
}

static void s_redirect_id(web_req_t *r, int64_t id, const char *query)
{
    char loc[128];
    snprintf(loc, sizeof loc, "/admin/integrations/%lld%s%s", (long long)id, query ? "?" : "", query ? query : "");
    web_redirect(r, loc);
}

static void s_test(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    Portico__Broker__CheckIntegrationRequest req = PORTICO__BROKER__CHECK_INTEGRATION_REQUEST__INIT;
    req.base_url = in->base_url;
    req.ca_cert_pem = in->ca_cert_pem;
    req.oauth_version = in->oauth_version;
    req.integration_id = in->id;
    req.actor = a->actor;
    Portico__Broker__CheckIntegrationReply *chk = NULL;
    bus_error_t err;
    char q[48];
    if (admin_broker(r, &broker_m_integration_check, &req.base, (ProtobufCMessage **)&chk, &err) < 0) {
        snprintf(q, sizeof q, "tested=%s", s_test_code(&err));
    } else {
        snprintf(q, sizeof q, "tested=%s", chk->warning[0] ? "warn" : "ok");
        protobuf_c_message_free_unpacked(&chk->base, NULL);
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    s_redirect_id(r, id, q);
}

static void s_set_enabled(web_req_t *r, admin_ctx_t *a, int64_t id, bool on)
{
    Portico__Registry__UpdateIntegrationRequest req = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    req.id = id;
    req.set_enabled = true;
    req.enabled = on;
    req.actor = a->actor;
    req.addr = r->addr;
    bus_error_t err;
    if (admin_registry(r, &registry_m_integration_update, &req.base, NULL, &err) < 0) {
        web_bus_error_page(r, &err, on ? "Could not enable the integration" : "Could not disable the integration");
        return;
    }
    s_redirect_id(r, id, on ? "enabled=1" : "disabled=1");
}

/* ---- delete ---- */

static void s_delete_page(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, a, "Delete integration", "integrations");
    sbuf_puts(&b, "<section class=\"card narrow danger-zone\"><h1>Delete ");
    sbuf_html(&b, in->name);
    sbuf_puts(&b, "?</h1><p>Deleting this integration cannot be undone. This is what happens:</p><ul>");
    sbuf_printf(&b, "<li>Nobody can log in through it any more. %lld Bitbucket account%s linked to it now.</li>",
                (long long)in->identity_count, in->identity_count == 1 ? " is" : "s are");
    sbuf_puts(&b, "<li>People who log in <strong>only</strong> through this integration lose access: their "
                  "Portico accounts and sessions are removed. People linked through another integration keep "
                  "their account and lose only this link.</li>"
                  "<li>The tokens Portico holds for this Bitbucket (access and refresh tokens) are deleted, and "
                  "so is the stored client secret or key pair.</li>"
                  "<li>The application link in Bitbucket stays: delete it there too.</li></ul>"
                  "<p class=\"hint\">To stop logins for a while instead, disable the integration.</p>");
    sbuf_printf(&b, "<form method=\"post\" action=\"%s/admin/integrations/%lld/delete\">", web_cfg.public_path,
                (long long)in->id);
    page_csrf(&b, r);
    sbuf_printf(&b,
                "<div class=\"actions\"><button type=\"submit\" class=\"danger\">Delete integration</button>"
                "<a class=\"button secondary\" href=\"%s/admin/integrations/%lld\">Cancel</a></div></form>"
                "</section>",
                web_cfg.public_path, (long long)in->id);
    admin_page_end(&b);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_send_html(r, 200, &b);
    sbuf_free(&b);
}

static void s_delete(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__DeleteIntegrationRequest req = PORTICO__REGISTRY__DELETE_INTEGRATION_REQUEST__INIT;
    req.id = id;
    req.actor = a->actor;
    req.addr = r->addr;
    Portico__Registry__DeleteIntegrationReply *rep = NULL;
    bus_error_t err;
    if (admin_registry(r, &registry_m_integration_delete, &req.base, (ProtobufCMessage **)&rep, &err) < 0) {
        web_bus_error_page(r, &err, "Could not delete the integration");
        return;
    }
    char loc[80];
    snprintf(loc, sizeof loc, "/admin?deleted=1&users=%lld", (long long)rep->users_removed);
    log_info("integration deleted", "id=%lld identities=%lld users=%lld", (long long)id,
             (long long)rep->identities_removed, (long long)rep->users_removed);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    web_redirect(r, loc);
}

/* ---- edit ---- */

static void s_render_edit(web_req_t *r, admin_ctx_t *a, const Portico__Registry__Integration *in, const iform_t *f,
                          int status)
{
    sbuf_t b;
    sbuf_init(&b);
    admin_page_begin(&b, r, a, "Edit integration", "integrations");
    sbuf_puts(&b, "<h1>Edit ");
    sbuf_html(&b, in->name);
    sbuf_puts(&b, "</h1>");
    if (f->e_top[0])
        page_notice(&b, "error", f->e_top);
    else if (s_form_has_errors(f))
        page_notice(&b, "error", "Nothing was saved. Correct the fields marked below and save again.");
    sbuf_printf(&b,
                "<form class=\"card form\" method=\"post\" action=\"%s/admin/integrations/%lld/edit\" "
                "novalidate>",
                web_cfg.public_path, (long long)in->id);
    page_csrf(&b, r);
    sbuf_puts(&b, "<div class=\"field\"><label for=\"display-name\">Display name</label><input type=\"text\" "
                  "id=\"display-name\" name=\"name\" autocomplete=\"off\" value=\"");
    sbuf_html(&b, f->name);
    sbuf_printf(&b, "\" maxlength=\"%d\"", ADMIN_MAX_NAME);
    s_describedby(&b, "display-name-hint", "display-name-error", f->e_name);
    sbuf_puts(&b, "><p class=\"hint\" id=\"display-name-hint\">Shown on the login page.</p>");
    s_error(&b, "display-name-error", f->e_name);
    sbuf_puts(&b, "</div><div class=\"field\"><label for=\"base-url\">Base URL</label><input type=\"url\" "
                  "id=\"base-url\" name=\"base_url\" autocomplete=\"off\" spellcheck=\"false\" value=\"");
    sbuf_html(&b, f->base_url);
    sbuf_printf(&b, "\" maxlength=\"%d\"", ADMIN_MAX_BASE_URL);
    s_describedby(&b, "base-url-hint", "base-url-error", f->e_base);
    sbuf_puts(&b, "><p class=\"hint\" id=\"base-url-hint\">Change it when Bitbucket moves. Portico checks the new "
                  "address before saving. The callback URL stays the same. A new host (or port) counts as another "
                  "Bitbucket: it needs the Client Secret again (OAuth 2), and the Bitbucket accounts linked through "
                  "this integration are unlinked, with their stored tokens, as on Delete.</p>");
    s_error(&b, "base-url-error", f->e_base);
    sbuf_puts(&b, "</div>");
    if (in->oauth_version == 2) {
        sbuf_puts(&b, "<div class=\"field\"><label for=\"client-id\">Client ID</label><input type=\"text\" "
                      "id=\"client-id\" name=\"client_id\" autocomplete=\"off\" spellcheck=\"false\" value=\"");
        sbuf_html(&b, f->client_id);
        sbuf_printf(&b, "\" maxlength=\"%d\"", ADMIN_MAX_CLIENT_ID);
        s_describedby(&b, "client-id-hint", "client-id-error", f->e_client_id);
        sbuf_puts(&b, "><p class=\"hint\" id=\"client-id-hint\">As shown in the application link in "
                      "Bitbucket.</p>");
        s_error(&b, "client-id-error", f->e_client_id);
        sbuf_printf(&b,
                    "</div><div class=\"field\"><label for=\"client-secret\">Client Secret</label><input "
                    "type=\"password\" id=\"client-secret\" name=\"client_secret\" autocomplete=\"new-password\" "
                    "placeholder=\"%s\" maxlength=\"%d\"",
                    in->has_client_secret ? "••••••••" : "", ADMIN_MAX_CLIENT_SECRET);
        s_describedby(&b, "client-secret-hint", "client-secret-error", f->e_secret);
        sbuf_puts(&b, "><p class=\"hint\" id=\"client-secret-hint\">Leave empty to keep the stored secret. Type a "
                      "new one to rotate it, for example after resetting it in Bitbucket.</p>");
        s_error(&b, "client-secret-error", f->e_secret);
        sbuf_puts(&b, "</div>");
    }
    sbuf_puts(&b, "<div class=\"field\"><label for=\"ca-cert\">CA certificate</label><textarea id=\"ca-cert\" "
                  "name=\"ca_cert\" spellcheck=\"false\" placeholder=\"-----BEGIN CERTIFICATE-----\"");
    s_describedby(&b, "ca-cert-hint", "ca-cert-error", f->e_ca);
    sbuf_puts(&b, ">");
    sbuf_html(&b, f->ca_pem);
    sbuf_puts(&b, "</textarea><p class=\"hint\" id=\"ca-cert-hint\">Only for a Bitbucket whose HTTPS certificate "
                  "comes from your own certificate authority. Empty means the system's trusted CAs.</p>");
    s_error(&b, "ca-cert-error", f->e_ca);
    sbuf_printf(&b,
                "</div><div class=\"actions\"><button type=\"submit\">Save changes</button>"
                "<a class=\"button secondary\" href=\"%s/admin/integrations/%lld\">Cancel</a></div></form>",
                web_cfg.public_path, (long long)in->id);
    admin_page_end(&b);
    web_send_html(r, status, &b);
    sbuf_free(&b);
}

static void s_edit(web_req_t *r, admin_ctx_t *a, int64_t id)
{
    Portico__Registry__GetIntegrationReply *rep = s_get(r, id);
    if (!rep)
        return;
    const Portico__Registry__Integration *in = rep->integration;
    iform_t f;
    char secret[ADMIN_MAX_CLIENT_SECRET + 1] = "";
    if (s_form_init(&f) < 0) {
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        web_error_page(r, 500, "Something went wrong", "Portico ran out of memory.", "Try again.");
        return;
    }
    f.id = in->id;
    f.oauth_version = in->oauth_version;
    if (!admin_is_post(r)) {
        snprintf(f.name, sizeof f.name, "%s", in->name);
        snprintf(f.base_url, sizeof f.base_url, "%s", in->base_url);
        snprintf(f.client_id, sizeof f.client_id, "%s", in->client_id);
        snprintf(f.ca_pem, ADMIN_MAX_CA_PEM + 1, "%s", in->ca_cert_pem);
        s_render_edit(r, a, in, &f, 200);
        goto out;
    }
    if (web_body_failed(r)) {
        web_error_page(r, 413, "Form too large", "The form is larger than Portico accepts (64 KiB in all).",
                       "Go back, shorten the CA certificate, and save again.");
        goto out;
    }
    s_field(r, "name", f.name, sizeof f.name, f.e_name, "The display name");
    s_trim(f.name);
    s_field(r, "base_url", f.base_url, sizeof f.base_url, f.e_base, "The base URL");
    s_trim(f.base_url);
    s_check_base(&f);
    s_field(r, "client_id", f.client_id, sizeof f.client_id, f.e_client_id, "The client ID");
    s_trim(f.client_id);
    s_field(r, "client_secret", secret, sizeof secret, f.e_secret, "The client secret");
    s_trim(secret);
    if (web_form(r, "ca_cert", f.ca_pem, ADMIN_MAX_CA_PEM + 1) == -2) {
        f.ca_pem[0] = '\0';
        snprintf(f.e_ca, sizeof f.e_ca, "The CA certificate is too long: at most 64 KiB.");
    }
    s_trim(f.ca_pem);
    s_check_ca(&f);
    if (!f.name[0] && !f.e_name[0])
        snprintf(f.e_name, sizeof f.e_name, "Enter a display name.");
    if (in->oauth_version == 2 && !f.client_id[0] && !f.e_client_id[0])
        snprintf(f.e_client_id, sizeof f.e_client_id, "Enter the client ID from the application link.");
    if (s_form_has_errors(&f)) {
        s_render_edit(r, a, in, &f, 400);
        goto out;
    }
    bus_error_t err;
    bool moved = strcmp(f.base_norm, in->base_url) != 0 || strcmp(f.ca_pem, in->ca_cert_pem) != 0;
    if (moved) {
        Portico__Broker__CheckIntegrationRequest creq = PORTICO__BROKER__CHECK_INTEGRATION_REQUEST__INIT;
        creq.base_url = f.base_norm;
        creq.ca_cert_pem = f.ca_pem;
        creq.oauth_version = in->oauth_version;
        creq.actor = a->actor;
        Portico__Broker__CheckIntegrationReply *chk = NULL;
        if (admin_broker(r, &broker_m_integration_check, &creq.base, (ProtobufCMessage **)&chk, &err) < 0) {
            s_check_failed(&f, &err);
            snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
            s_render_edit(r, a, in, &f, 400);
            goto out;
        }
        protobuf_c_message_free_unpacked(&chk->base, NULL);
    }
    Portico__Registry__UpdateIntegrationRequest req = PORTICO__REGISTRY__UPDATE_INTEGRATION_REQUEST__INIT;
    req.id = in->id;
    req.name = f.name;
    req.base_url = f.base_norm;
    req.client_id = in->oauth_version == 2 ? f.client_id : "";
    req.client_secret = in->oauth_version == 2 ? secret : "";
    req.set_ca_cert = true;
    req.ca_cert_pem = f.ca_pem;
    req.actor = a->actor;
    req.addr = r->addr;
    if (admin_registry(r, &registry_m_integration_update, &req.base, NULL, &err) < 0) {
        s_store_failed(&f, &err);
        snprintf(f.base_url, sizeof f.base_url, "%s", f.base_norm);
        s_render_edit(r, a, in, &f, err.code == PORTICO__ERROR_CODE__CONFLICT ? 409 : 400);
        goto out;
    }
    log_info("integration updated", "id=%lld secret_rotated=%s", (long long)in->id, secret[0] ? "yes" : "no");
    s_redirect_id(r, in->id, "updated=1");
out:
    explicit_bzero(secret, sizeof secret);
    s_form_free(&f);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* /admin/integrations/{id}[/edit|/test|/enable|/disable|/delete|/access] */
void admin_integration_dispatch(web_req_t *r)
{
    const char *rest = NULL;
    int64_t id = web_path_id(r, "/admin/integrations/", &rest);
    bool post = admin_is_post(r);
    bool get = !post && (!strcmp(r->ri->request_method, "GET") || !strcmp(r->ri->request_method, "HEAD"));
    if (id <= 0 || (!post && !get)) {
        web_error_page(r, id <= 0 ? 404 : 405, id <= 0 ? "Page not found" : "Not allowed",
                       "There is no page at this address.", "Start from the Admin page.");
        return;
    }
    admin_ctx_t a;
    if (!admin_enter(r, &a))
        return;
    if (!strcmp(rest, "") && get)
        s_show(r, &a, id);
    else if (!strcmp(rest, "/edit"))
        s_edit(r, &a, id);
    else if (!strcmp(rest, "/test") && post)
        s_test(r, &a, id);
    else if (!strcmp(rest, "/enable") && post)
        s_set_enabled(r, &a, id, true);
    else if (!strcmp(rest, "/disable") && post)
        s_set_enabled(r, &a, id, false);
    else if (!strcmp(rest, "/access"))
        admin_access_edit(r, &a, id);
    else if (!strcmp(rest, "/delete") && get)
        s_delete_page(r, &a, id);
    else if (!strcmp(rest, "/delete") && post)
        s_delete(r, &a, id);
    else
        web_error_page(r, 404, "Page not found", "There is no page at this address.", "Start from the Admin page.");
}
