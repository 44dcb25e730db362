/* cookie: exact names, pairs split on ';', a name sent twice ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "web/cookie.h"

#include <string.h>

#define NAME "__Host-portico_session"

static int s_get(const char *line, char *out, size_t out_size)
{
    const char *lines[] = {line};
    return cookie_get(lines, 1, NAME, out, out_size);
}

static void test_the_named_cookie_is_read(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(s_get(NAME "=REAL", v, sizeof v), 4);
    assert_string_equal(v, "REAL");
    assert_int_equal(s_get("a=b; " NAME "=REAL; c=d", v, sizeof v), 4);
    assert_string_equal(v, "REAL");
    assert_int_equal(s_get("a=b;" NAME "= REAL ;c", v, sizeof v), 4);
    assert_string_equal(v, "REAL");
    assert_int_equal(s_get(NAME "=", v, sizeof v), 0);
    assert_string_equal(v, "");
    assert_int_equal(s_get("a=b", v, sizeof v), COOKIE_ABSENT);
    assert_int_equal(s_get("", v, sizeof v), COOKIE_ABSENT);
    assert_int_equal(s_get(NAME, v, sizeof v), COOKIE_ABSENT);
    /* Too long for the buffer: nothing of it. */
    assert_int_equal(s_get(NAME "=0123456789", v, 8), COOKIE_TOO_LONG);
    assert_string_equal(v, "");
    /* Header lines are read together (a proxy may split them). */
    const char *two[] = {"a=b", NAME "=REAL"};
    assert_int_equal(cookie_get(two, 2, NAME, v, sizeof v), 4);
    assert_string_equal(v, "REAL");
}

/* What civetweb's mg_get_cookie took for the web's cookie. */
static void test_another_cookie_cannot_stand_for_it(void **state)
{
    (void)state;
    char v[64];
    /* Inside another cookie's value. */
    assert_int_equal(s_get("foo=x " NAME "=EVIL", v, sizeof v), COOKIE_ABSENT);
    assert_int_equal(s_get("foo=x " NAME "=EVIL; " NAME "=REAL", v, sizeof v), 4);
    assert_string_equal(v, "REAL");
    /* Another case of the name. */
    assert_int_equal(s_get("__HOST-portico_session=EVIL; " NAME "=REAL", v, sizeof v), 4);
    assert_string_equal(v, "REAL");
    assert_int_equal(s_get("__host-portico_session=EVIL", v, sizeof v), COOKIE_ABSENT);
    /* A name that ends in the one asked for. */
    assert_int_equal(s_get("x" NAME "=EVIL", v, sizeof v), COOKIE_ABSENT);
    /* Twice: which one the web set cannot be told. */
    assert_int_equal(s_get(NAME "=EVIL; " NAME "=REAL", v, sizeof v), COOKIE_ABSENT);
    const char *two[] = {NAME "=EVIL", NAME "=REAL"};
    assert_int_equal(cookie_get(two, 2, NAME, v, sizeof v), COOKIE_ABSENT);
    /* Quotes are part of the value (the web's values never have them). */
    assert_int_equal(s_get(NAME "=\"EVIL\"", v, sizeof v), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_named_cookie_is_read),
        cmocka_unit_test(test_another_cookie_cannot_stand_for_it),
    };
    return cmocka_run_group_tests_name("cookie", tests, NULL, NULL);
}
