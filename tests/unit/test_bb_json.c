/* Decoding Bitbucket's answers (services/bitbucket/bb_json.c): each
 * response shape, malformed and missing fields, wrong types, and the
 * mapping of error answers to typed errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bitbucket/bb_json.h"
#include "envelope.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OK PORTICO__ERROR_CODE__OK
#define BAD_REQUEST PORTICO__ERROR_CODE__BAD_REQUEST
#define NOT_FOUND PORTICO__ERROR_CODE__NOT_FOUND
#define UNAVAILABLE PORTICO__ERROR_CODE__UNAVAILABLE
#define UNAUTHORIZED PORTICO__ERROR_CODE__UNAUTHORIZED
#define FORBIDDEN PORTICO__ERROR_CODE__FORBIDDEN
#define RATE_LIMITED PORTICO__ERROR_CODE__RATE_LIMITED
#define UPSTREAM PORTICO__ERROR_CODE__UPSTREAM

static bb_response_t s_resp(long status, const char *body)
{
    bb_response_t r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.body = body;
    r.body_len = body ? strlen(body) : 0;
    r.host = "git.example.com";
    return r;
}

static void s_expect(const bus_error_t *err, int code, const char *detail)
{
    if (err->code != code || strcmp(bus_detail_name(err->detail), detail) != 0)
        fail_msg("got %d/%s (%s), want %d/%s", err->code, bus_detail_name(err->detail), err->message, code, detail);
    assert_true(strlen(err->message) > 0);
}

/* ---- server.info ---- */

static void test_server_info(void **state)
{
    (void)state;
    Portico__Bitbucket__ServerInfoReply out;
    bus_error_t err;
    bb_response_t r = s_resp(200, "{\"version\":\"7.11.2\",\"buildNumber\":\"7011002\",\"buildDate\":\"1616539597394\","
                                  "\"displayName\":\"Bitbucket\"}");
    assert_int_equal(bb_decode_server_info(&r, &out, &err), 0);
    assert_string_equal(out.version, "7.11.2");
    assert_string_equal(out.build_number, "7011002");
    assert_string_equal(out.display_name, "Bitbucket");
    bb_server_info_clear(&out);

    /* Tolerated: a numeric buildNumber, a missing displayName. */
    r = s_resp(200, "{\"version\":\"8.9.0\",\"buildNumber\":8009000}");
    assert_int_equal(bb_decode_server_info(&r, &out, &err), 0);
    assert_string_equal(out.build_number, "8009000");
    assert_string_equal(out.display_name, "");
    bb_server_info_clear(&out);
}

static void test_server_info_not_bitbucket(void **state)
{
    (void)state;
    const char *bodies[] = {
        "<html><body>Welcome to nginx</body></html>",
        "{}",
        "{\"version\":8}",
        "{\"version\":\"\"}",
        "{\"version\":null}",
        "[\"version\"]",
        "\"7.0\"",
        "{\"version\":\"7.0\",\"buildNumber\":[1]}",
        "{\"version\":\"7.0\"",
        "",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        Portico__Bitbucket__ServerInfoReply out;
        bus_error_t err;
        bb_response_t r = s_resp(200, bodies[i]);
        assert_int_equal(bb_decode_server_info(&r, &out, &err), -1);
        s_expect(&err, UPSTREAM, "not_bitbucket");
        assert_non_null(strstr(err.message, "this does not look like a Bitbucket Data Center / Server instance"));
        assert_string_equal(out.version, "");
    }
    long statuses[] = {404, 400, 405};
    for (size_t i = 0; i < 3; i++) {
        Portico__Bitbucket__ServerInfoReply out;
        bus_error_t err;
        bb_response_t r = s_resp(statuses[i], "{\"message\":\"null for uri: x\",\"status-code\":404}");
        assert_int_equal(bb_decode_server_info(&r, &out, &err), -1);
        s_expect(&err, UPSTREAM, "not_bitbucket");
        assert_non_null(strstr(err.message, "git.example.com"));
    }
}

static void test_server_info_statuses(void **state)
{
    (void)state;
    Portico__Bitbucket__ServerInfoReply out;
    bus_error_t err;
    bb_response_t r = s_resp(503, "down for maintenance");
    assert_int_equal(bb_decode_server_info(&r, &out, &err), -1);
    s_expect(&err, UNAVAILABLE, "server_error");
    r = s_resp(302, "");
    r.location = "https://sso.example.com/login?next=x";
    assert_int_equal(bb_decode_server_info(&r, &out, &err), -1);
    s_expect(&err, UPSTREAM, "redirect");
    assert_non_null(strstr(err.message, "https://sso.example.com/login"));
    r = s_resp(401, "");
    assert_int_equal(bb_decode_server_info(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "unauthorized");
}

/* ---- oauth2.token ---- */

static void test_token(void **state)
{
    (void)state;
    Portico__Bitbucket__TokenReply out;
    bus_error_t err;
    bb_response_t r = s_resp(200, "{\"access_token\":\"AT-1\",\"token_type\":\"bearer\",\"expires_in\":3600,"
                                  "\"refresh_token\":\"RT-1\",\"scope\":\"REPO_READ\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), 0);
    assert_string_equal(out.access_token, "AT-1");
    assert_string_equal(out.refresh_token, "RT-1");
    assert_string_equal(out.token_type, "bearer");
    assert_string_equal(out.scope, "REPO_READ");
    assert_int_equal(out.expires_in, 3600);
    bb_token_clear(&out);

    /* Tolerated: "Bearer", expires_in as a string, "scopes", no refresh token. */
    r = s_resp(200, "{\"access_token\":\"AT-2\",\"token_type\":\"Bearer\",\"expires_in\":\"7200\",\"scopes\":\"A B\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), 0);
    assert_int_equal(out.expires_in, 7200);
    assert_string_equal(out.scope, "A B");
    assert_string_equal(out.refresh_token, "");
    bb_token_clear(&out);
}

static void test_token_errors(void **state)
{
    (void)state;
    Portico__Bitbucket__TokenReply out;
    bus_error_t err;
    bb_response_t r = s_resp(400, "{\"error\":\"invalid_grant\",\"error_description\":\"Code expired\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "invalid_grant");
    assert_non_null(strstr(err.message, "Code expired"));

    r = s_resp(401, "{\"error\":\"invalid_client\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "invalid_client");
    assert_non_null(strstr(err.message, "client ID or secret"));

    r = s_resp(400, "{\"error\":\"unsupported_grant_type\",\"error_description\":\"no\\u0007\\nway\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, UPSTREAM, "unsupported_grant_type");
    assert_null(strchr(err.message, '\n'));
    assert_null(strchr(err.message, '\a'));

    /* A hostile error word is reduced to safe characters. */
    r = s_resp(400, "{\"error\":\"<script>x\\\"y\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    assert_int_equal(err.code, UPSTREAM);
    assert_int_equal(err.detail, DETAIL(OAUTH2_ERROR));
    assert_non_null(strstr(err.message, "(scriptxy)"));

    /* Errors with a 200. */
    r = s_resp(200, "{\"error\":\"invalid_grant\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "invalid_grant");

    /* No RFC 6749 body: the status decides. */
    r = s_resp(400, "<html>bad</html>");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, BAD_REQUEST, "bad_request");
    r = s_resp(404, "");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, UPSTREAM, "no_oauth2");
    r = s_resp(500, "{\"error\":\"server_error\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, UNAVAILABLE, "server_error");
}

static void test_token_malformed(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{\"access_token\":42}",
        "{\"access_token\":\"\"}",
        "{\"token_type\":\"bearer\"}",
        "{\"access_token\":\"a\",\"refresh_token\":{}}",
        "{\"access_token\":\"a\",\"expires_in\":-5}",
        "{\"access_token\":\"a\",\"expires_in\":1.5}",
        "{\"access_token\":\"a\",\"expires_in\":\"soon\"}",
        "{\"access_token\":\"a\",\"expires_in\":99999999999999}",
        "{\"access_token\":\"a\",\"scope\":[\"REPO_READ\"]}",
        "not json",
        "[]",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        Portico__Bitbucket__TokenReply out;
        bus_error_t err;
        bb_response_t r = s_resp(200, bodies[i]);
        if (bb_decode_token(&r, &out, &err) != -1)
            fail_msg("accepted %s", bodies[i]);
        s_expect(&err, UPSTREAM, "bad_response");
        assert_string_equal(out.access_token, "");
    }
    Portico__Bitbucket__TokenReply out;
    bus_error_t err;
    bb_response_t r = s_resp(200, "{\"access_token\":\"AT\",\"token_type\":\"mac\"}");
    assert_int_equal(bb_decode_token(&r, &out, &err), -1);
    s_expect(&err, UPSTREAM, "token_type");
    assert_null(strstr(err.message, "AT\""));
}

/* ---- whoami ---- */

static void test_whoami(void **state)
{
    (void)state;
    Portico__Bitbucket__WhoAmIReply out;
    bus_error_t err;
    bb_response_t r = s_resp(200, "jcitizen\n");
    r.x_auserid = "\"104\"";
    assert_int_equal(bb_decode_whoami(&r, &out, &err), 0);
    assert_string_equal(out.username, "jcitizen");
    assert_int_equal(out.user_id, 104);
    bb_whoami_clear(&out);

    /* The header is URL-encoded (Java URLEncoder: '+' is a space). */
    r = s_resp(200, "");
    r.x_ausername = "jane.doe%40example.com";
    r.x_auserid = "7";
    assert_int_equal(bb_decode_whoami(&r, &out, &err), 0);
    assert_string_equal(out.username, "jane.doe@example.com");
    assert_int_equal(out.user_id, 7);
    bb_whoami_clear(&out);

    r = s_resp(200, "  \r\n");
    r.x_ausername = "John+Smith%C3%A9";
    assert_int_equal(bb_decode_whoami(&r, &out, &err), 0);
    assert_string_equal(out.username, "John Smith\xc3\xa9");
    assert_int_equal(out.user_id, 0);
    bb_whoami_clear(&out);

    /* Both: the header (decoded) is what the authentication filter says. */
    r = s_resp(200, "jane.doe@example.com");
    r.x_ausername = "jane.doe%40example.com";
    assert_int_equal(bb_decode_whoami(&r, &out, &err), 0);
    assert_string_equal(out.username, "jane.doe@example.com");
    bb_whoami_clear(&out);
    r = s_resp(200, "from-body");
    r.x_ausername = "from%2Dheader";
    assert_int_equal(bb_decode_whoami(&r, &out, &err), 0);
    assert_string_equal(out.username, "from-header");
    bb_whoami_clear(&out);
    /* An unreadable header falls back to the body. */
    r = s_resp(200, "jdoe\r\n");
    r.x_ausername = "%ZZ";
    assert_int_equal(bb_decode_whoami(&r, &out, &err), 0);
    assert_string_equal(out.username, "jdoe");
    bb_whoami_clear(&out);
}

/* X-AUSERID, when present, is what the broker compares with the user's
 * record: one it cannot read is not taken for an absent one. */
static void test_whoami_unreadable_user_id(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "104, 105", "abc", "0", "-7", "+7", "1 04", "", "\"\"", "104abc", "99999999999999999999", "0x68", "\"104"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Portico__Bitbucket__WhoAmIReply out;
        bus_error_t err;
        bb_response_t r = s_resp(200, "jdoe");
        r.x_auserid = bad[i];
        if (bb_decode_whoami(&r, &out, &err) != -1)
            fail_msg("X-AUSERID \"%s\" was read as %lld", bad[i], (long long)out.user_id);
        s_expect(&err, UPSTREAM, "bad_response");
        assert_non_null(strstr(err.message, "X-AUSERID"));
    }
    static const struct {
        const char *header;
        long long id;
    } good[] = {{"104", 104}, {" 104\t", 104}, {"\"104\"", 104}, {"9223372036854775807", INT64_MAX}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        Portico__Bitbucket__WhoAmIReply out;
        bus_error_t err;
        bb_response_t r = s_resp(200, "jdoe");
        r.x_auserid = good[i].header;
        assert_int_equal(bb_decode_whoami(&r, &out, &err), 0);
        assert_int_equal(out.user_id, good[i].id);
        bb_whoami_clear(&out);
    }
}

static void test_whoami_anonymous(void **state)
{
    (void)state;
    struct {
        const char *body, *header;
    } cases[] = {
        {"", NULL},           {"\n", ""},          {"<html><body>Log in</body></html>", NULL},
        {"", "%ZZ"},          {"", "evil%0Aline"}, {"", "bad%C3"},
        {"two\nlines", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Portico__Bitbucket__WhoAmIReply out;
        bus_error_t err;
        bb_response_t r = s_resp(200, cases[i].body);
        r.x_ausername = cases[i].header;
        if (bb_decode_whoami(&r, &out, &err) != -1)
            fail_msg("case %zu accepted as %s", i, out.username);
        s_expect(&err, UNAUTHORIZED, "anonymous");
        /* The broker reads "anonymous"; the message stays neutral. */
        assert_null(strstr(err.message, "two-factor"));
    }
}

static void test_whoami_oauth1_problem(void **state)
{
    (void)state;
    Portico__Bitbucket__WhoAmIReply out;
    bus_error_t err;
    bb_response_t r = s_resp(401, "oauth_problem=token_rejected");
    r.www_authenticate = "OAuth realm=\"https%3A%2F%2Fgit.example.com\", oauth_problem=\"token_rejected\"";
    assert_int_equal(bb_decode_whoami(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "token_rejected");

    r = s_resp(401, "");
    assert_int_equal(bb_decode_whoami(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "unauthorized");
}

/* ---- users ---- */

static const char *s_user_json =
    "{\"name\":\"jane.doe@example.com\",\"emailAddress\":\"jane@example.com\",\"id\":101,"
    "\"displayName\":\"Jane <b>Doe</b>\",\"active\":true,\"slug\":\"jane.doe_example.com\","
    "\"type\":\"NORMAL\",\"links\":{\"self\":[{\"href\":\"https://x/users/jane\"}]}}";

static void test_user(void **state)
{
    (void)state;
    Portico__Bitbucket__User u;
    bus_error_t err;
    bb_response_t r = s_resp(200, s_user_json);
    assert_int_equal(bb_decode_user(&r, &u, &err), 0);
    assert_string_equal(u.name, "jane.doe@example.com");
    assert_string_equal(u.slug, "jane.doe_example.com");
    assert_string_equal(u.email, "jane@example.com");
    assert_string_equal(u.display_name, "Jane <b>Doe</b>");
    assert_int_equal(u.id, 101);
    assert_true(u.active);
    bb_user_clear(&u);

    /* Tolerated: id as a string, no slug (the name stands in), no active. */
    r = s_resp(200, "{\"name\":\"bob\",\"id\":\"7\"}");
    assert_int_equal(bb_decode_user(&r, &u, &err), 0);
    assert_int_equal(u.id, 7);
    assert_string_equal(u.slug, "bob");
    assert_true(u.active);
    bb_user_clear(&u);

    r = s_resp(200, "{\"name\":\"bob\",\"active\":false,\"emailAddress\":null}");
    assert_int_equal(bb_decode_user(&r, &u, &err), 0);
    assert_false(u.active);
    assert_string_equal(u.email, "");
    bb_user_clear(&u);
}

static void test_user_malformed(void **state)
{
    (void)state;
    const char *bodies[] = {
        "{}",
        "{\"name\":\"\"}",
        "{\"name\":5}",
        "{\"name\":\"a\",\"active\":\"yes\"}",
        "{\"name\":\"a\",\"id\":-1}",
        "{\"name\":\"a\",\"id\":\"12x\"}",
        "{\"name\":\"a\",\"displayName\":{}}",
        "{\"name\":\"a\",\"slug\":[]}",
        "[{\"name\":\"a\"}]",
        "null",
        "{\"name\":\"a\\u0000b\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        Portico__Bitbucket__User u;
        bus_error_t err;
        bb_response_t r = s_resp(200, bodies[i]);
        if (bb_decode_user(&r, &u, &err) != -1)
            fail_msg("accepted %s", bodies[i]);
        s_expect(&err, UPSTREAM, "bad_response");
    }
}

static void test_user_statuses(void **state)
{
    (void)state;
    Portico__Bitbucket__User u;
    bus_error_t err;
    bb_response_t r = s_resp(404, "{\"errors\":[{\"context\":null,\"message\":\"User jane does not exist.\","
                                  "\"exceptionName\":\"com.atlassian.bitbucket.user.NoSuchUserException\"}]}");
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    s_expect(&err, NOT_FOUND, "not_found");
    assert_non_null(strstr(err.message, "User jane does not exist."));
    r = s_resp(401, "{\"errors\":[{\"message\":\"Authentication failed.\"}]}");
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    s_expect(&err, UNAUTHORIZED, "unauthorized");
    r = s_resp(403, "");
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    s_expect(&err, FORBIDDEN, "forbidden");
    r = s_resp(429, "");
    r.retry_after = "12";
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    s_expect(&err, RATE_LIMITED, "rate_limited");
    assert_int_equal(err.retry_after_s, 12);
    assert_non_null(strstr(err.message, "12 s"));
    r = s_resp(429, "");
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    assert_int_equal(err.retry_after_s, -1);
    r = s_resp(502, "<html>bad gateway</html>");
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    s_expect(&err, UNAVAILABLE, "server_error");
    r = s_resp(418, "");
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    s_expect(&err, UPSTREAM, "unexpected_status");
}

static void test_users_page(void **state)
{
    (void)state;
    char body[2048];
    snprintf(body, sizeof body,
             "{\"size\":3,\"limit\":100,\"isLastPage\":true,\"start\":0,\"values\":[%s,{\"name\":\"bob\"},42,"
             "{\"displayName\":\"no name\"}]}",
             s_user_json);
    Portico__Bitbucket__FindUsersReply out;
    bus_error_t err;
    size_t skipped = 0;
    bb_response_t r = s_resp(200, body);
    assert_int_equal(bb_decode_users(&r, &out, &skipped, &err), 0);
    assert_int_equal(out.n_users, 2);
    assert_int_equal(skipped, 2);
    assert_string_equal(out.users[0]->slug, "jane.doe_example.com");
    assert_string_equal(out.users[1]->name, "bob");
    bb_users_clear(&out);

    r = s_resp(200, "{\"values\":[]}");
    assert_int_equal(bb_decode_users(&r, &out, &skipped, &err), 0);
    assert_int_equal(out.n_users, 0);
    bb_users_clear(&out);

    r = s_resp(200, "{\"values\":{}}");
    assert_int_equal(bb_decode_users(&r, &out, &skipped, &err), -1);
    s_expect(&err, UPSTREAM, "bad_response");
}

/* ---- repositories ---- */

static const char *s_repo_json =
    "{\"slug\":\"portico\",\"id\":1,\"name\":\"Portico\",\"hierarchyId\":\"abc\",\"scmId\":\"git\","
    "\"state\":\"AVAILABLE\",\"statusMessage\":\"Available\",\"forkable\":true,"
    "\"project\":{\"key\":\"PRJ\",\"id\":1,\"name\":\"Project\",\"public\":false,\"type\":\"NORMAL\"},"
    "\"public\":true,\"links\":{\"clone\":[{\"href\":\"ssh://git@h:7999/prj/portico.git\",\"name\":\"ssh\"},"
    "{\"href\":\"https://h/bitbucket/scm/prj/portico.git\",\"name\":\"http\"}],"
    "\"self\":[{\"href\":\"https://h/bitbucket/projects/PRJ/repos/portico/browse\"}]}}";

static void test_repos_page(void **state)
{
    (void)state;
    char body[4096];
    snprintf(body, sizeof body,
             "{\"size\":2,\"limit\":2,\"isLastPage\":false,\"values\":[%s,"
             "{\"slug\":\"s2\",\"project\":{\"key\":\"~JANE\",\"type\":\"PERSONAL\"},"
             "\"links\":{\"clone\":[{\"href\":\"https://h/scm/~jane/s2.git\",\"name\":\"https\"}]}},"
             "{\"slug\":\"noproject\"},{\"slug\":1,\"project\":{\"key\":\"K\"}},\"junk\"],"
             "\"start\":0,\"nextPageStart\":3}",
             s_repo_json);
    Portico__Bitbucket__ListReposReply out;
    bus_error_t err;
    size_t skipped = 0;
    bb_response_t r = s_resp(200, body);
    assert_int_equal(bb_decode_repos(&r, 0, &out, &skipped, &err), 0);
    assert_int_equal(out.n_repositories, 2);
    assert_int_equal(skipped, 3);
    assert_false(out.is_last_page);
    /* nextPageStart is passed on as given, even when it skips. */
    assert_int_equal(out.next_page_start, 3);
    Portico__Bitbucket__Repository *a = out.repositories[0], *b = out.repositories[1];
    assert_string_equal(a->project_key, "PRJ");
    assert_string_equal(a->project_name, "Project");
    assert_string_equal(a->slug, "portico");
    assert_string_equal(a->name, "Portico");
    assert_true(a->public_);
    assert_string_equal(a->browse_url, "https://h/bitbucket/projects/PRJ/repos/portico/browse");
    assert_string_equal(a->clone_http, "https://h/bitbucket/scm/prj/portico.git");
    assert_string_equal(a->clone_ssh, "ssh://git@h:7999/prj/portico.git");
    assert_string_equal(b->project_key, "~JANE");
    assert_string_equal(b->name, "s2");
    assert_false(b->public_);
    assert_string_equal(b->clone_http, "https://h/scm/~jane/s2.git");
    assert_string_equal(b->clone_ssh, "");
    assert_string_equal(b->browse_url, "");
    bb_repos_clear(&out);
}

static void test_repos_paging(void **state)
{
    (void)state;
    Portico__Bitbucket__ListReposReply out;
    bus_error_t err;
    size_t skipped;
    /* The last page has no nextPageStart. */
    bb_response_t r = s_resp(200, "{\"isLastPage\":true,\"values\":[],\"start\":50}");
    assert_int_equal(bb_decode_repos(&r, 50, &out, &skipped, &err), 0);
    assert_true(out.is_last_page);
    assert_int_equal(out.next_page_start, 0);
    bb_repos_clear(&out);
    /* No isLastPage: a nextPageStart means there is more. */
    r = s_resp(200, "{\"values\":[],\"nextPageStart\":\"30\"}");
    assert_int_equal(bb_decode_repos(&r, 25, &out, &skipped, &err), 0);
    assert_false(out.is_last_page);
    assert_int_equal(out.next_page_start, 30);
    bb_repos_clear(&out);
    r = s_resp(200, "{\"values\":[]}");
    assert_int_equal(bb_decode_repos(&r, 25, &out, &skipped, &err), 0);
    assert_true(out.is_last_page);
    bb_repos_clear(&out);

    const char *bad[] = {
        "{\"isLastPage\":false,\"values\":[]}",
        "{\"isLastPage\":false,\"values\":[],\"nextPageStart\":10}",
        "{\"isLastPage\":false,\"values\":[],\"nextPageStart\":5}",
    };
    for (size_t i = 0; i < 3; i++) {
        r = s_resp(200, bad[i]);
        assert_int_equal(bb_decode_repos(&r, 10, &out, &skipped, &err), -1);
        s_expect(&err, UPSTREAM, "bad_paging");
        assert_int_equal(out.n_repositories, 0);
    }
    const char *malformed[] = {
        "{\"isLastPage\":\"no\",\"values\":[]}",
        "{\"isLastPage\":false,\"values\":[],\"nextPageStart\":-1}",
        "{\"isLastPage\":false,\"values\":[],\"nextPageStart\":99999999999}",
        "{\"isLastPage\":true}",
        "{\"isLastPage\":true,\"values\":null}",
        "<html/>",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        r = s_resp(200, malformed[i]);
        assert_int_equal(bb_decode_repos(&r, 0, &out, &skipped, &err), -1);
        s_expect(&err, UPSTREAM, "bad_response");
    }
}

/* ---- OAuth 1 ---- */

/* jansson works in one block of memory that every decoder reuses
 * (bb_json.c): what a decoder returned stays intact through the next
 * decodes, and an answer larger than the block still decodes whole. */
static void test_decoders_reuse_memory(void **state)
{
    (void)state;
    Portico__Bitbucket__TokenReply first, second;
    Portico__Bitbucket__ListReposReply page;
    Portico__Bitbucket__User user;
    bus_error_t err;
    size_t skipped;
    bb_response_t r = s_resp(200, "{\"access_token\":\"first-access\",\"refresh_token\":\"first-refresh\"}");
    assert_int_equal(bb_decode_token(&r, &first, &err), 0);

    /* 3,000 repositories: well past the block, so most of it is malloc'ed. */
    size_t n = 3000, cap = n * (strlen(s_repo_json) + 1) + 200, len = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    len += (size_t)snprintf(body + len, cap - len, "{\"isLastPage\":true,\"values\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", s_repo_json);
    snprintf(body + len, cap - len, "]}");
    r = s_resp(200, body);
    assert_int_equal(bb_decode_repos(&r, 0, &page, &skipped, &err), 0);
    free(body);
    assert_int_equal(page.n_repositories, 1000); /* MAX_PAGE_ITEMS */
    assert_int_equal(skipped, 0);
    assert_string_equal(page.repositories[0]->slug, "portico");
    assert_string_equal(page.repositories[999]->clone_ssh, "ssh://git@h:7999/prj/portico.git");

    r = s_resp(200, "{\"access_token\":\"second-access\",\"token_type\":\"bearer\"}");
    assert_int_equal(bb_decode_token(&r, &second, &err), 0);
    r = s_resp(200, "{\"name\":\"jane\",\"slug\":\"jane\",\"id\":7}");
    assert_int_equal(bb_decode_user(&r, &user, &err), 0);

    assert_string_equal(first.access_token, "first-access");
    assert_string_equal(first.refresh_token, "first-refresh");
    assert_string_equal(second.access_token, "second-access");
    assert_string_equal(second.refresh_token, "");
    assert_string_equal(page.repositories[500]->browse_url, "https://h/bitbucket/projects/PRJ/repos/portico/browse");
    assert_string_equal(user.name, "jane");
    assert_int_equal(user.id, 7);
    bb_token_clear(&first);
    bb_token_clear(&second);
    bb_repos_clear(&page);
    bb_user_clear(&user);
}

static void test_oauth1_token(void **state)
{
    (void)state;
    Portico__Bitbucket__OAuth1TokenReply out;
    bus_error_t err;
    bb_response_t r = s_resp(200, "oauth_token=Tk%2Fabc&oauth_token_secret=S3cr3t&oauth_expires_in=157680000"
                                  "&oauth_session_handle=h&oauth_authorization_expires_in=157680000");
    assert_int_equal(bb_decode_oauth1_token(&r, &out, &err), 0);
    assert_string_equal(out.token, "Tk/abc");
    assert_string_equal(out.token_secret, "S3cr3t");
    assert_int_equal(out.expires_in, 157680000);
    bb_oauth1_token_clear(&out);

    r = s_resp(200, "oauth_token_secret=x&oauth_token=y&oauth_callback_confirmed=true");
    assert_int_equal(bb_decode_oauth1_token(&r, &out, &err), 0);
    assert_string_equal(out.token, "y");
    assert_int_equal(out.expires_in, 0);
    bb_oauth1_token_clear(&out);

    /* Over ten years counts as not said: the broker adds it to now. */
    r = s_resp(200, "oauth_token=y&oauth_token_secret=x&oauth_expires_in=9223372036854775807");
    assert_int_equal(bb_decode_oauth1_token(&r, &out, &err), 0);
    assert_int_equal(out.expires_in, 0);
    bb_oauth1_token_clear(&out);

    const char *bad[] = {"oauth_token=y",
                         "oauth_token=&oauth_token_secret=x",
                         "oauth_token=a+b&oauth_token_secret=x",
                         "oauth_token=%ZZ&oauth_token_secret=x",
                         "{\"oauth_token\":\"y\"}",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = s_resp(200, bad[i]);
        if (bb_decode_oauth1_token(&r, &out, &err) != -1)
            fail_msg("accepted %s", bad[i]);
        s_expect(&err, UPSTREAM, "bad_response");
    }
}

static void test_oauth1_problems(void **state)
{
    (void)state;
    Portico__Bitbucket__OAuth1TokenReply out;
    bus_error_t err;
    bb_response_t r = s_resp(400, "oauth_problem=timestamp_refused&oauth_acceptable_timestamps=1-2");
    r.www_authenticate = "OAuth realm=\"http://h\", oauth_problem=timestamp_refused";
    assert_int_equal(bb_decode_oauth1_token(&r, &out, &err), -1);
    s_expect(&err, BAD_REQUEST, "timestamp_refused");
    assert_non_null(strstr(err.message, "clocks"));

    /* From the body when the header does not say. */
    r = s_resp(401, "oauth_problem=signature_invalid&oauth_signature_base_string=x");
    assert_int_equal(bb_decode_oauth1_token(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "signature_invalid");

    const char *problems[] = {"consumer_key_unknown", "nonce_used",    "token_rejected",
                              "permission_denied",    "token_expired", "something_new"};
    for (size_t i = 0; i < sizeof problems / sizeof problems[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "OAuth realm=\"x\",oauth_problem=\"%s\"", problems[i]);
        r = s_resp(401, "");
        r.www_authenticate = h;
        assert_int_equal(bb_decode_oauth1_token(&r, &out, &err), -1);
        /* A problem Portico does not know is OAUTH1_PROBLEM, named in the message. */
        bool known = strcmp(problems[i], "something_new") != 0;
        s_expect(&err, UNAUTHORIZED, known ? problems[i] : "oauth1_problem");
        assert_non_null(strstr(err.message, problems[i]));
    }
    /* A 200 whose body is a problem. */
    r = s_resp(200, "oauth_problem=permission_denied");
    assert_int_equal(bb_decode_oauth1_token(&r, &out, &err), -1);
    s_expect(&err, UNAUTHORIZED, "permission_denied");
    /* Unknown consumer on the REST API too. */
    Portico__Bitbucket__User u;
    r = s_resp(401, "");
    r.www_authenticate = "OAuth realm=\"x\", oauth_problem=\"consumer_key_unknown\"";
    assert_int_equal(bb_decode_user(&r, &u, &err), -1);
    s_expect(&err, UNAUTHORIZED, "consumer_key_unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_info),
        cmocka_unit_test(test_server_info_not_bitbucket),
        cmocka_unit_test(test_server_info_statuses),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_token_errors),
        cmocka_unit_test(test_token_malformed),
        cmocka_unit_test(test_whoami),
        cmocka_unit_test(test_whoami_unreadable_user_id),
        cmocka_unit_test(test_whoami_anonymous),
        cmocka_unit_test(test_whoami_oauth1_problem),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_user_malformed),
        cmocka_unit_test(test_user_statuses),
        cmocka_unit_test(test_users_page),
        cmocka_unit_test(test_repos_page),
        cmocka_unit_test(test_repos_paging),
        cmocka_unit_test(test_decoders_reuse_memory),
        cmocka_unit_test(test_oauth1_token),
        cmocka_unit_test(test_oauth1_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
