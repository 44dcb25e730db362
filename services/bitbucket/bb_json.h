/* bb_json: what Bitbucket's answers say.
 *
 * Decoders for every response portico-bitbucket reads (JSON bodies, and on
 * the same pattern the form-encoded OAuth 1 answers and the whoami
 * servlet's plain text and its X-AUSERNAME / X-AUSERID headers). An answer
 * that is not a success becomes a typed error (bb_status.h); form bodies
 * and headers are read with bb_form.h and bb_header.h. Everything here is
 * untrusted input: wrong types, missing fields and garbage give a typed
 * error, never a crash.
 *
 * The small answers (token, server info, a user) are parsed with jansson:
 * in Debian, small strict API, clear error reporting, no global state, and
 * it guarantees decoded strings are valid UTF-8 without embedded NUL bytes
 * (we do not pass JSON_ALLOW_NUL). The paged answers (repositories, users),
 * the largest and read at every login, are walked with bb_pick.h (yajl's
 * callback parser, nothing built), which accepts what jansson accepts.
 *
 * Pure functions, no I/O: unit tested in tests/unit/test_bb_json.c,
 * compared with the jansson page decoders they replaced in
 * tests/unit/test_bb_page_diff.c, and fuzzed by tests/fuzz/fuzz_bb_json.c. */
#ifndef PORTICO_BB_JSON_H
#define PORTICO_BB_JSON_H

#include "bb_status.h"
#include "bitbucket.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Each decoder takes the whole answer: a success is decoded into *out
 * (strings are fresh; release with the matching _clear), anything else
 * becomes a typed error. 0, or -1 with err set and *out cleared. */
int bb_decode_server_info(const bb_response_t *r, Portico__Bitbucket__ServerInfoReply *out, bus_error_t *err);
int bb_decode_token(const bb_response_t *r, Portico__Bitbucket__TokenReply *out, bus_error_t *err);
int bb_decode_whoami(const bb_response_t *r, Portico__Bitbucket__WhoAmIReply *out, bus_error_t *err);
int bb_decode_user(const bb_response_t *r, Portico__Bitbucket__User *out, bus_error_t *err);
/* A page of /rest/api/1.0/users. *skipped counts entries that were not
 * users (wrong types, no name) and were left out. */
int bb_decode_users(const bb_response_t *r, Portico__Bitbucket__FindUsersReply *out, size_t *skipped, bus_error_t *err);
/* A page of /rest/api/1.0/repos requested at start. nextPageStart is
 * passed on as given (it can skip); one that does not move forward is an
 * error, so a caller that follows it cannot loop. */
int bb_decode_repos(const bb_response_t *r, int32_t start, Portico__Bitbucket__ListReposReply *out, size_t *skipped,
                    bus_error_t *err);
int bb_decode_oauth1_token(const bb_response_t *r, Portico__Bitbucket__OAuth1TokenReply *out, bus_error_t *err);

void bb_server_info_clear(Portico__Bitbucket__ServerInfoReply *m);
void bb_token_clear(Portico__Bitbucket__TokenReply *m); /* wipes the tokens */
void bb_whoami_clear(Portico__Bitbucket__WhoAmIReply *m);
void bb_user_clear(Portico__Bitbucket__User *m);
void bb_users_clear(Portico__Bitbucket__FindUsersReply *m);
void bb_repos_clear(Portico__Bitbucket__ListReposReply *m);
void bb_oauth1_token_clear(Portico__Bitbucket__OAuth1TokenReply *m); /* wipes the tokens */

#endif
