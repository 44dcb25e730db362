/* buserr: the one error type: names of codes and details as logs show
 * them, parsing a name back, and what a peer sends made safe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buserr.h"

#include <ctype.h>
#include <string.h>

static void test_set(void **state)
{
    (void)state;
    bus_error_t e;
    bus_error_set(&e, PORTICO__ERROR_CODE__UNAUTHORIZED, DETAIL(INVALID_GRANT), "refused %d", 7);
    assert_int_equal(e.code, PORTICO__ERROR_CODE__UNAUTHORIZED);
    assert_int_equal(e.detail, DETAIL(INVALID_GRANT));
    assert_string_equal(e.message, "refused 7");
    assert_int_equal(e.retry_after_s, -1);
    bus_error_set(NULL, 1, 1, "nothing happens");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(bus_detail_name(DETAIL(INVALID_GRANT)), "invalid_grant");
    assert_string_equal(bus_detail_name(DETAIL(CLIENT_ID)), "client_id");
    assert_string_equal(bus_detail_name(DETAIL(NONE)), "");
    assert_string_equal(bus_detail_name(-5), "unknown");
    assert_string_equal(bus_detail_name(1 << 20), "unknown");
    assert_string_equal(bus_code_name(PORTICO__ERROR_CODE__TIMEOUT), "TIMEOUT");
    assert_string_equal(bus_code_name(999), "UNKNOWN");
    /* Every value has a distinct, log-safe name that parses back to it. */
    const ProtobufCEnumDescriptor *d = &portico__error_detail__descriptor;
    assert_true(d->n_values <= 512);
    for (unsigned i = 0; i < d->n_values; i++) {
        int v = d->values[i].value;
        if (v == DETAIL(NONE))
            continue;
        const char *n = bus_detail_name(v);
        assert_true(strlen(n) > 0);
        for (const char *p = n; *p; p++)
            assert_true(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_');
        assert_int_equal(bus_detail_parse(n, -1), v);
    }
    assert_int_equal(bus_detail_parse("no_such_detail", DETAIL(PROVIDER_ERROR)), DETAIL(PROVIDER_ERROR));
    assert_int_equal(bus_detail_parse("", 3), 3);
    assert_int_equal(bus_detail_parse(NULL, 3), 3);
}

static void test_from_peer(void **state)
{
    (void)state;
    bus_error_t e;
    bus_error_set(&e, PORTICO__ERROR_CODE__CONFLICT, DETAIL(PENDING_TOTAL), "busy");
    bus_error_from_peer(&e);
    assert_int_equal(e.code, PORTICO__ERROR_CODE__CONFLICT);
    assert_int_equal(e.detail, DETAIL(PENDING_TOTAL));
    bus_error_set(&e, -3, 1 << 30, "odd");
    bus_error_from_peer(&e);
    assert_int_equal(e.code, PORTICO__ERROR_CODE__INTERNAL);
    assert_int_equal(e.detail, DETAIL(NONE));
    assert_string_equal(e.message, "odd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_from_peer),
    };
    return cmocka_run_group_tests_name("buserr", tests, NULL, NULL);
}
