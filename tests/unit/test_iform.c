/* iform: the integration form's rules without HTTP: required fields,
 * size limits, trimming, URL and CA checks, and where a failed check or a
 * refused store lands on the form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "form_fields.h"
#include "web/iform.h"
#include <stdio.h>
#include <string.h>

static void test_step1(void **state)
{
    (void)state;
    iform_t f;
    assert_int_equal(iform_init(&f), 0);
    field_t empty[] = {{NULL, NULL}};
    iform_read_step1(&f, form_fields_get, empty);
    assert_false(f.base_ok);
    assert_non_null(strstr(f.e_base, "Enter the base URL"));
    assert_int_equal(f.oauth_version, 2);
    iform_free(&f);

    assert_int_equal(iform_init(&f), 0);
    field_t ok[] = {
        {"id", "12"}, {"base_url", "  https://git.example.com/bitbucket/ \n"}, {"oauth_version", "1"}, {NULL, NULL}};
    iform_read_step1(&f, form_fields_get, ok);
    assert_true(f.base_ok);
    assert_false(iform_has_errors(&f));
    assert_int_equal(f.id, 12);
    assert_int_equal(f.oauth_version, 1);
    assert_string_equal(f.base_norm, "https://git.example.com/bitbucket");
    iform_free(&f);

    assert_int_equal(iform_init(&f), 0);
    field_t bad[] = {{"id", "x1"}, {"base_url", "ftp://x"}, {"oauth_version", "3"}, {NULL, NULL}};
    iform_read_step1(&f, form_fields_get, bad);
    assert_int_equal(f.id, 0);
    assert_false(f.base_ok);
    assert_true(f.e_base[0] != '\0');
    assert_non_null(strstr(f.e_oauth, "OAuth 2 or OAuth 1"));
    iform_free(&f);
}

static void test_create(void **state)
{
    (void)state;
    char secret[ADMIN_MAX_CLIENT_SECRET + 1];
    iform_t f;
    assert_int_equal(iform_init(&f), 0);
    field_t missing[] = {{"base_url", "https://git.example.com"}, {NULL, NULL}};
    iform_read_create(&f, secret, sizeof secret, form_fields_get, missing);
    assert_true(iform_has_errors(&f));
    assert_non_null(strstr(f.e_client_id, "Enter the client ID"));
    assert_non_null(strstr(f.e_secret, "Enter the client secret"));
    assert_non_null(strstr(f.e_top, "expired")); /* no id */
    iform_free(&f);

    static char long_secret[ADMIN_MAX_CLIENT_SECRET + 10];
    memset(long_secret, 's', sizeof long_secret - 1);
    assert_int_equal(iform_init(&f), 0);
    field_t rest[] = {{"id", "7"},
                      {"base_url", "https://git.example.com"},
                      {"client_id", " abc \t"},
                      {"client_secret", long_secret},
                      {"name", "  Acme  "},
                      {"ca_cert", "not a certificate"},
                      {"accept_warning", "1"},
                      {NULL, NULL}};
    iform_read_create(&f, secret, sizeof secret, form_fields_get, rest);
    assert_string_equal(f.client_id, "abc");
    assert_string_equal(f.name, "Acme");
    assert_non_null(strstr(f.e_secret, "too long"));
    assert_string_equal(secret, "");
    assert_non_null(strstr(f.e_ca, "PEM"));
    assert_true(f.accept_warning);
    assert_string_equal(f.e_top, "");
    iform_free(&f);

    /* OAuth 1 needs no credentials. */
    assert_int_equal(iform_init(&f), 0);
    field_t oauth1[] = {{"id", "7"}, {"base_url", "https://git.example.com"}, {"oauth_version", "1"}, {NULL, NULL}};
    iform_read_create(&f, secret, sizeof secret, form_fields_get, oauth1);
    assert_false(iform_has_errors(&f));
    iform_free(&f);
}

static void test_edit(void **state)
{
    (void)state;
    char secret[ADMIN_MAX_CLIENT_SECRET + 1];
    iform_t f;
    assert_int_equal(iform_init(&f), 0);
    f.oauth_version = 2;
    field_t fields[] = {{"name", " "}, {"base_url", "https://git.example.com"}, {NULL, NULL}};
    iform_read_edit(&f, secret, sizeof secret, form_fields_get, fields);
    assert_string_equal(f.e_name, "Enter a display name.");
    assert_non_null(strstr(f.e_client_id, "client ID"));
    assert_string_equal(f.e_secret, ""); /* empty keeps the stored one */
    iform_free(&f);

    /* The stored CA stays when the field is not sent, and goes when it is
     * sent empty. */
    static const char stored[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    field_t without_ca[] = {
        {"name", "Acme"}, {"base_url", "https://git.example.com"}, {"client_id", "abc"}, {NULL, NULL}};
    field_t empty_ca[] = {{"name", "Acme"},
                          {"base_url", "https://git.example.com"},
                          {"client_id", "abc"},
                          {"ca_cert", " "},
                          {NULL, NULL}};
    assert_int_equal(iform_init(&f), 0);
    f.oauth_version = 2;
    snprintf(f.ca_pem, ADMIN_MAX_CA_PEM + 1, "%s", stored);
    iform_read_edit(&f, secret, sizeof secret, form_fields_get, without_ca);
    assert_false(iform_has_errors(&f));
    assert_string_equal(f.ca_pem, stored);
    iform_free(&f);
    assert_int_equal(iform_init(&f), 0);
    f.oauth_version = 2;
    snprintf(f.ca_pem, ADMIN_MAX_CA_PEM + 1, "%s", stored);
    iform_read_edit(&f, secret, sizeof secret, form_fields_get, empty_ca);
    assert_false(iform_has_errors(&f));
    assert_string_equal(f.ca_pem, "");
    iform_free(&f);
}

static void test_nul_is_refused_on_its_field(void **state)
{
    (void)state;
    char secret[ADMIN_MAX_CLIENT_SECRET + 1];
    iform_t f;
    assert_int_equal(iform_init(&f), 0);
    f.oauth_version = 2;
    field_t fields[] = {{"name", "Acme%00 Evil"},     {"base_url", "https://git.example.com"},
                        {"client_id", "abc"},         {"client_secret", "s3cret%00"},
                        {"ca_cert", "-----BEGIN%00"}, {NULL, NULL}};
    iform_read_edit(&f, secret, sizeof secret, form_fields_get, fields);
    assert_true(iform_has_errors(&f));
    assert_non_null(strstr(f.e_name, "The display name holds a NUL"));
    assert_non_null(strstr(f.e_secret, "NUL"));
    assert_non_null(strstr(f.e_ca, "NUL"));
    assert_string_equal(f.e_client_id, "");
    iform_free(&f);
}

static void test_failures_land_on_fields(void **state)
{
    (void)state;
    iform_t f;
    assert_int_equal(iform_init(&f), 0);
    bus_error_t err = {0};
    err.code = PORTICO__ERROR_CODE__TLS;
    iform_check_failed(&f, &err);
    assert_true(f.e_base[0] && f.e_ca[0]);
    memset(&err, 0, sizeof err);
    err.code = PORTICO__ERROR_CODE__BAD_REQUEST;
    err.detail = DETAIL(OAUTH2_TOO_OLD);
    iform_check_failed(&f, &err);
    assert_non_null(strstr(f.e_oauth, "older than 7.21"));
    assert_string_equal(iform_test_code(&err), "too_old");
    err.detail = DETAIL(CLIENT_SECRET);
    snprintf(err.message, sizeof err.message, "refused");
    iform_store_failed(&f, &err);
    assert_string_equal(f.e_secret, "refused");
    iform_free(&f);

    char name[64];
    iform_default_name("https://git.example.com/bitbucket", name, sizeof name);
    assert_string_equal(name, "git.example.com/bitbucket");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step1),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_edit),
        cmocka_unit_test(test_nul_is_refused_on_its_field),
        cmocka_unit_test(test_failures_land_on_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
