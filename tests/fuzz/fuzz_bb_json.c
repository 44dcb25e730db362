/* libFuzzer target: every decoder of Bitbucket's answers in
 * services/bitbucket/bb_json.c and the modules it builds on (JSON bodies,
 * form-encoded OAuth 1 bodies, the whoami text and headers,
 * WWW-Authenticate, Retry-After) and the
 * mapping of error answers, and that bb_pick accepts the documents jansson
 * accepts. Build and run: tests/fuzz/build_bb.sh, or with
 * every target: tests/fuzz/run.sh. Seeds: tests/fuzz/corpus/fuzz_bb_json/.
 *
 * fuzz-sources: services/bitbucket/bb_text.c services/bitbucket/bb_form.c services/bitbucket/bb_header.c
 * fuzz-sources: services/bitbucket/bb_status.c services/bitbucket/bb_pick.c services/bitbucket/bb_json.c
 *
 * Input layout: byte 0 picks the status class, byte 1 the header the rest
 * may feed; the remainder is split at the first NUL into a header value and
 * the body (no NUL: all body). */
#include "bitbucket/bb_form.h"
#include "bitbucket/bb_header.h"
#include "bitbucket/bb_json.h"
#include "bitbucket/bb_pick.h"
#include "bitbucket/bb_text.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_pick_value(void *ctx, int node, const bb_jv_t *v)
{
    (void)ctx;
    (void)node;
    (void)v;
    return 0;
}

/* bb_pick accepts what jansson accepts, but for its two deliberate
 * differences: a huge number nobody reads, a NUL byte jansson passed over. */
static void s_pick_like_jansson(const char *body, size_t len)
{
    static const bb_pick_node_t nodes[] = {{-1, NULL}};
    bb_pick_t p = {nodes, 1, s_pick_value, NULL, NULL};
    int rc = bb_pick(&p, body, len);
    json_error_t e;
    json_t *j = json_loadb(body, len, 0, &e);
    json_decref(j);
    if ((rc == 0) == (j != NULL))
        return;
    if (rc == 0 && json_error_code(&e) == json_error_numeric_overflow)
        return;
    if (rc < 0 && memchr(body, '\0', len))
        return;
    abort();
}

static const long s_statuses[] = {200, 200, 200, 201, 302, 400, 401, 403, 404, 429, 500, 503, 418, 0, 204, 599};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    long status = s_statuses[data[0] & 15];
    uint8_t which = data[1];
    data += 2;
    size -= 2;

    /* Header value (NUL-terminated copy) and body (exact length, no NUL). */
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : 0;
    char *header = malloc(hlen + 1);
    if (!header)
        return 0;
    memcpy(header, data, hlen);
    header[hlen] = '\0';
    const uint8_t *body_start = nul ? nul + 1 : data;
    size_t body_len = nul ? size - hlen - 1 : size;
    /* A heap copy of exactly body_len bytes, so reads past it are caught. */
    char *body = malloc(body_len ? body_len : 1);
    if (!body) {
        free(header);
        return 0;
    }
    memcpy(body, body_start, body_len);

    bb_response_t r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.body = body;
    r.body_len = body_len;
    r.host = "fuzz.example:7990";
    if (nul) {
        switch (which & 7) {
        case 0:
            r.x_ausername = header;
            r.x_auserid = header;
            break;
        case 1:
            r.www_authenticate = header;
            break;
        case 2:
            r.retry_after = header;
            break;
        case 3:
            r.location = header;
            break;
        case 4:
            r.content_type = header;
            break;
        default:
            r.x_ausername = header;
            r.www_authenticate = header;
            r.retry_after = header;
            r.location = header;
            break;
        }
    }

    s_pick_like_jansson(body, body_len);
    bus_error_t err;
    size_t skipped;
    Portico__Bitbucket__ServerInfoReply si;
    if (bb_decode_server_info(&r, &si, &err) == 0)
        bb_server_info_clear(&si);
    Portico__Bitbucket__TokenReply tok;
    if (bb_decode_token(&r, &tok, &err) == 0)
        bb_token_clear(&tok);
    Portico__Bitbucket__WhoAmIReply who;
    if (bb_decode_whoami(&r, &who, &err) == 0) {
        /* What we hand on must be one valid UTF-8 line. */
        if (!bb_utf8_valid(who.username, strlen(who.username)) || strchr(who.username, '\n'))
            abort();
        bb_whoami_clear(&who);
    }
    Portico__Bitbucket__User user;
    if (bb_decode_user(&r, &user, &err) == 0)
        bb_user_clear(&user);
    Portico__Bitbucket__FindUsersReply users;
    if (bb_decode_users(&r, &users, &skipped, &err) == 0)
        bb_users_clear(&users);
    Portico__Bitbucket__ListReposReply repos;
    int32_t start = (int32_t)(which >> 3) * 7;
    if (bb_decode_repos(&r, start, &repos, &skipped, &err) == 0) {
        if (!repos.is_last_page && repos.next_page_start <= start)
            abort(); /* a caller following it would loop */
        bb_repos_clear(&repos);
    }
    Portico__Bitbucket__OAuth1TokenReply o1;
    if (bb_decode_oauth1_token(&r, &o1, &err) == 0)
        bb_oauth1_token_clear(&o1);
    for (int api = BB_API_REST; api <= BB_API_WHOAMI; api++) {
        bb_error_from_response((bb_api_t)api, &r, &err);
        /* Messages are safe to show: no control characters. */
        for (const char *p = err.message; *p; p++)
            if ((unsigned char)*p < 0x20)
                abort();
    }

    char out[161];
    bb_errors_message(body, body_len, out, sizeof out);
    bb_oauth_problem(header, body, body_len, out, 64);
    bb_retry_after_seconds(header, 1700000000);
    bb_safe_text(body, body_len, out, sizeof out);
    char *v = bb_form_get(body, body_len, "oauth_token");
    free(v);
    free(body);
    free(header);
    return 0;
}
