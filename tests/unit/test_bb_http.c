/* Transport failures to typed errors (services/bitbucket/bb_http.c). The
 * transfers themselves are exercised by tests/service/bitbucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_http.h"
#include "envelope.pb-c.h"

#include <string.h>

static bus_error_t s_map(CURLcode code, bool connected, bool too_large)
{
    bb_http_result_t res;
    memset(&res, 0, sizeof res);
    res.curl_code = code;
    res.connected = connected;
    res.too_large = too_large;
    bus_error_t err;
    memset(&err, 0, sizeof err);
    bb_http_error(&res, "git.example.com:7990", 9000, 3000, &err);
    return err;
}

static void s_is(CURLcode code, bool connected, int want_code, const char *want_detail)
{
    bus_error_t err = s_map(code, connected, false);
    if (err.code != want_code || strcmp(bus_detail_name(err.detail), want_detail) != 0)
        fail_msg("curl %d: got %d/%s, want %d/%s", (int)code, err.code, bus_detail_name(err.detail), want_code,
                 want_detail);
    assert_non_null(strstr(err.message, "git.example.com:7990"));
}

static void test_mapping(void **state)
{
    (void)state;
    s_is(CURLE_COULDNT_CONNECT, false, PORTICO__ERROR_CODE__UNAVAILABLE, "unreachable");
    s_is(CURLE_COULDNT_RESOLVE_HOST, false, PORTICO__ERROR_CODE__UNAVAILABLE, "unreachable");
    s_is(CURLE_OPERATION_TIMEDOUT, false, PORTICO__ERROR_CODE__TIMEOUT, "timeout");
    s_is(CURLE_OPERATION_TIMEDOUT, true, PORTICO__ERROR_CODE__TIMEOUT, "timeout");
    s_is(CURLE_PEER_FAILED_VERIFICATION, true, PORTICO__ERROR_CODE__TLS, "certificate");
    s_is(CURLE_SSL_CACERT_BADFILE, false, PORTICO__ERROR_CODE__TLS, "ca_cert_invalid");
    s_is(CURLE_SSL_CONNECT_ERROR, true, PORTICO__ERROR_CODE__TLS, "handshake");
    s_is(CURLE_GOT_NOTHING, true, PORTICO__ERROR_CODE__UNAVAILABLE, "connection");
    s_is(CURLE_RECV_ERROR, true, PORTICO__ERROR_CODE__UNAVAILABLE, "connection");
    s_is(CURLE_WEIRD_SERVER_REPLY, true, PORTICO__ERROR_CODE__UPSTREAM, "protocol");
    s_is(CURLE_UNSUPPORTED_PROTOCOL, false, PORTICO__ERROR_CODE__BAD_REQUEST, "base_url");
    s_is(CURLE_FILESIZE_EXCEEDED, true, PORTICO__ERROR_CODE__UPSTREAM, "too_large");

    bus_error_t err = s_map(CURLE_WRITE_ERROR, true, true);
    assert_int_equal(err.code, PORTICO__ERROR_CODE__UPSTREAM);
    assert_int_equal(err.detail, DETAIL(TOO_LARGE));
}

static void test_messages(void **state)
{
    (void)state;
    bus_error_t err = s_map(CURLE_PEER_FAILED_VERIFICATION, true, false);
    assert_non_null(strstr(err.message, "could not be verified"));
    assert_non_null(strstr(err.message, "CA certificate"));
    err = s_map(CURLE_OPERATION_TIMEDOUT, false, false);
    assert_non_null(strstr(err.message, "3000 ms"));
    err = s_map(CURLE_OPERATION_TIMEDOUT, true, false);
    assert_non_null(strstr(err.message, "9000 ms"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
