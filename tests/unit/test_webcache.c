/* webcache: expiry, removal by key, owner and all, the epoch that stops a
 * stale put, the bounds, and many threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "web/webcache.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_put(webcache_t *c, const char *key, int64_t owner, const char *value, int64_t expires_at)
{
    return webcache_put(c, webcache_epoch(c), key, strlen(key), owner, value, strlen(value) + 1, expires_at);
}

static const char *s_get(webcache_t *c, const char *key, int64_t now)
{
    static char out[256];
    return webcache_get(c, key, strlen(key), now, out, sizeof out) < 0 ? NULL : out;
}

static void test_put_get_expiry(void **state)
{
    (void)state;
    webcache_t *c = webcache_new(1000, 1 << 20);
    assert_non_null(c);
    assert_int_equal(s_put(c, "a", 1, "one", 100), 0);
    assert_string_equal(s_get(c, "a", 0), "one");
    assert_string_equal(s_get(c, "a", 99), "one");
    assert_null(s_get(c, "a", 100)); /* the expiry is exclusive */
    assert_int_equal(webcache_count(c), 0);
    assert_null(s_get(c, "b", 0));
    /* A put replaces. */
    assert_int_equal(s_put(c, "a", 1, "one", 100), 0);
    assert_int_equal(s_put(c, "a", 1, "uno", 200), 0);
    assert_string_equal(s_get(c, "a", 150), "uno");
    assert_int_equal(webcache_count(c), 1);
    /* A value larger than the caller's buffer is not handed out. */
    char small[2];
    assert_int_equal(webcache_get(c, "a", 1, 0, small, sizeof small), -1);
    size_t n = 0;
    char *copy = webcache_get_copy(c, "a", 1, 0, &n);
    assert_non_null(copy);
    assert_int_equal(n, 4);
    assert_string_equal(copy, "uno");
    free(copy);
    /* Keys are bytes, not strings. */
    uint8_t k1[3] = {0, 1, 2}, k2[3] = {0, 1, 3};
    assert_int_equal(webcache_put(c, webcache_epoch(c), k1, 3, 0, "x", 2, 100), 0);
    assert_int_equal(webcache_get(c, k2, 3, 0, small, sizeof small), -1);
    assert_int_equal(webcache_get(c, k1, 3, 0, small, sizeof small), 2);
    /* Keys have a size limit. */
    char long_key[WEBCACHE_MAX_KEY + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(s_put(c, long_key, 0, "v", 100), -1);
    webcache_destroy(&c);
    assert_null(c);
    webcache_destroy(&c);
}

static void test_remove(void **state)
{
    (void)state;
    webcache_t *c = webcache_new(1000, 1 << 20);
    s_put(c, "s1", 7, "session 1 of user 7", 1000);
    s_put(c, "s2", 7, "session 2 of user 7", 1000);
    s_put(c, "r7", 7, "repositories of user 7", 1000);
    s_put(c, "s3", 8, "session of user 8", 1000);
    s_put(c, "setup", 0, "a setup session", 1000);
    webcache_remove(c, "s1", 2);
    assert_null(s_get(c, "s1", 0));
    assert_non_null(s_get(c, "s2", 0));
    webcache_remove_owner(c, 7);
    assert_null(s_get(c, "s2", 0));
    assert_null(s_get(c, "r7", 0));
    assert_string_equal(s_get(c, "s3", 0), "session of user 8");
    assert_string_equal(s_get(c, "setup", 0), "a setup session");
    webcache_clear(c);
    assert_int_equal(webcache_count(c), 0);
    assert_null(s_get(c, "s3", 0));
    webcache_destroy(&c);
}

/* Removing a user's entries finds them among many others (a small table,
 * so owners share slots), also after some were replaced, evicted or
 * removed by key, and leaves every other owner's entries alone. */
static void test_remove_owner_among_many(void **state)
{
    (void)state;
    webcache_t *c = webcache_new(256, 1 << 20);
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(s_put(c, key, i % 40 + 1, "v", 1000), 0);
    }
    assert_int_equal(s_put(c, "k7", 8, "replaced", 1000), 0); /* same owner */
    assert_int_equal(s_put(c, "k47", 3, "moved", 1000), 0);   /* another owner now */
    webcache_remove(c, "k87", 3);
    webcache_remove_owner(c, 8);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        bool gone = i % 40 + 1 == 8 || i == 87;
        if (i == 47)
            assert_string_equal(s_get(c, key, 0), "moved");
        else if (gone)
            assert_null(s_get(c, key, 0));
        else
            assert_non_null(s_get(c, key, 0));
    }
    assert_int_equal(webcache_count(c), 200 - 4); /* k7, k127, k167 and k87 */
    webcache_remove_owner(c, 3);
    assert_null(s_get(c, "k47", 0));
    assert_null(s_get(c, "k2", 0));
    assert_non_null(s_get(c, "k3", 0));
    webcache_destroy(&c);
}

/* A value looked up before a removal must not be stored after it: the
 * session ended while its lookup was on its way. */
static void test_epoch(void **state)
{
    (void)state;
    webcache_t *c = webcache_new(1000, 1 << 20);
    uint64_t before = webcache_epoch(c);
    webcache_remove_owner(c, 7); /* meanwhile, elsewhere */
    assert_int_equal(webcache_put(c, before, "s1", 2, 7, "stale", 6, 1000), -1);
    assert_null(s_get(c, "s1", 0));
    before = webcache_epoch(c);
    webcache_remove(c, "other", 5);
    assert_int_equal(webcache_put(c, before, "s1", 2, 7, "stale", 6, 1000), -1);
    before = webcache_epoch(c);
    webcache_clear(c);
    assert_int_equal(webcache_put(c, before, "s1", 2, 7, "stale", 6, 1000), -1);
    /* Gets and puts do not move the epoch. */
    before = webcache_epoch(c);
    s_put(c, "x", 1, "y", 1000);
    s_get(c, "x", 0);
    assert_int_equal(webcache_put(c, before, "s1", 2, 7, "fresh", 6, 1000), 0);
    assert_string_equal(s_get(c, "s1", 0), "fresh");
    /* Forgetting a key nobody cached leaves the epoch (and the puts in
     * flight) alone; forgetting a cached one moves it. */
    before = webcache_epoch(c);
    assert_false(webcache_forget(c, "made-up", 7));
    assert_int_equal(webcache_epoch(c), before);
    assert_true(webcache_forget(c, "s1", 2));
    assert_null(s_get(c, "s1", 0));
    assert_int_equal(webcache_put(c, before, "s2", 2, 7, "stale", 6, 1000), -1);
    webcache_destroy(&c);
}

/* Full: the entries that expire soonest make room. */
static void test_bounds(void **state)
{
    (void)state;
    /* 16 shards: 32 entries means 2 per shard. */
    webcache_t *c = webcache_new(32, 1 << 20);
    char key[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(s_put(c, key, 0, "v", 10000 + i), 0);
    }
    assert_true(webcache_count(c) <= 32);
    /* The newest (latest to expire) are kept. */
    int kept = 0;
    for (int i = 1000 - 8; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        kept += s_get(c, key, 0) != NULL;
    }
    assert_true(kept >= 4);
    assert_null(s_get(c, "k0", 0));
    webcache_destroy(&c);

    /* Bytes: 16 * 1000 bytes in all, 1000 per shard. */
    c = webcache_new(1000, 16 * 1000);
    char big[2000];
    memset(big, 'b', sizeof big);
    assert_int_equal(webcache_put(c, webcache_epoch(c), "big", 3, 0, big, sizeof big, 1000), -1);
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "m%d", i);
        assert_int_equal(webcache_put(c, webcache_epoch(c), key, strlen(key), 0, big, 400, 1000 + i), 0);
    }
    assert_true(webcache_count(c) <= 16 * 2);
    webcache_destroy(&c);
}

#define THREADS 4
#define ROUNDS 20000

static void *s_churn(void *arg)
{
    webcache_t *c = arg;
    char key[16], value[64], out[64];
    unsigned seed = (unsigned)(uintptr_t)pthread_self();
    for (int i = 0; i < ROUNDS; i++) {
        int k = rand_r(&seed) % 200;
        snprintf(key, sizeof key, "k%d", k);
        switch (rand_r(&seed) % 8) {
        case 0:
            webcache_remove(c, key, strlen(key));
            break;
        case 1:
            webcache_remove_owner(c, k % 10);
            break;
        case 2:
        case 3: {
            uint64_t e = webcache_epoch(c);
            snprintf(value, sizeof value, "value of %d", k);
            webcache_put(c, e, key, strlen(key), k % 10, value, strlen(value) + 1, 1000);
            break;
        }
        default:
            if (webcache_get(c, key, strlen(key), 0, out, sizeof out) >= 0) {
                snprintf(value, sizeof value, "value of %d", k);
                assert_string_equal(out, value);
            }
            break;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    webcache_t *c = webcache_new(64, 1 << 20);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_churn, c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(webcache_count(c) <= 64);
    webcache_clear(c);
    assert_int_equal(webcache_count(c), 0);
    webcache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_expiry),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_remove_owner_among_many),
        cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
