/* login_pages: every error detail of proto/envelope.proto has an entry in
 * the sign-in error page table (so a detail added without deciding its page
 * fails here), every page says what happened and what to do, and any code
 * or detail a peer may send, known or not, gets a page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "buserr.h"
#include "web/login_pages.h"

#include <limits.h>
#include <string.h>

static void s_complete(const login_page_t *p)
{
    assert_non_null(p);
    assert_non_null(p->title);
    assert_true(p->message == LOGIN_PAGE_MESSAGE_WHAT || (p->what && p->what[0]));
    assert_non_null(p->next_step);
    assert_true(p->status == 0 || (p->status >= 400 && p->status < 600));
}

static void test_every_detail_listed(void **state)
{
    (void)state;
    const ProtobufCEnumDescriptor *d = &portico__error_detail__descriptor;
    for (unsigned i = 0; i < d->n_values; i++) {
        int v = d->values[i].value;
        if (!login_page_listed(v))
            fail_msg("error detail %s has no entry in services/web/login_pages.c", d->values[i].name);
        for (unsigned c = 0; c < portico__error_code__descriptor.n_values; c++)
            s_complete(login_page_for(portico__error_code__descriptor.values[c].value, v));
    }
}

static void test_pages_kept(void **state)
{
    (void)state;
    const login_page_t *p = login_page_for(PORTICO__ERROR_CODE__NOT_FOUND, DETAIL(STATE_UNKNOWN));
    assert_true(login_page_own(DETAIL(STATE_UNKNOWN)));
    assert_int_equal(p->status, 400);
    assert_string_equal(p->title, "This sign-in link has expired or was already used: start again");
    p = login_page_for(PORTICO__ERROR_CODE__CONFLICT, DETAIL(PENDING_BROWSER));
    assert_int_equal(p->status, 429);
    assert_int_equal(p->retry_after_s, 60);
    /* unreachable has no page of its own: UNAVAILABLE says so. */
    assert_false(login_page_own(DETAIL(UNREACHABLE)));
    assert_string_equal(login_page_for(PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(UNREACHABLE))->title,
                        "Bitbucket is not reachable");
    assert_string_equal(login_page_for(PORTICO__ERROR_CODE__UNAVAILABLE, DETAIL(NONE))->title,
                        "Sign-in is unavailable");
    assert_string_equal(login_page_for(PORTICO__ERROR_CODE__TIMEOUT, DETAIL(DATABASE))->title,
                        "Bitbucket took too long to answer");
}

/* What a broken or newer peer may send. */
static void test_unknown_values(void **state)
{
    (void)state;
    const int odd[] = {-1, 100000, INT_MAX, INT_MIN, 511, 512};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        assert_false(login_page_listed(odd[i]));
        s_complete(login_page_for(odd[i], odd[i]));
        assert_string_equal(login_page_for(odd[i], odd[i])->title, "Sign-in did not work");
        s_complete(login_page_for(PORTICO__ERROR_CODE__UPSTREAM, odd[i]));
    }
    /* And after bus_error_from_peer, which every reply goes through. */
    bus_error_t e;
    bus_error_set(&e, 12345, 54321, "x");
    bus_error_from_peer(&e);
    assert_int_equal(e.code, PORTICO__ERROR_CODE__INTERNAL);
    assert_int_equal(e.detail, DETAIL(NONE));
    assert_string_equal(login_page_for(e.code, e.detail)->title, "Sign-in did not work");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_detail_listed),
        cmocka_unit_test(test_pages_kept),
        cmocka_unit_test(test_unknown_values),
    };
    return cmocka_run_group_tests_name("login_pages", tests, NULL, NULL);
}
