/* login_oauth1: the OAuth 1.0a steps of the login state machines
 * (login.c runs them; see login_oauth1.c for the three legs). */
#ifndef PORTICO_BROKER_LOGIN_OAUTH1_H
#define PORTICO_BROKER_LOGIN_OAUTH1_H

#include "login_steps.h"

/* login.start */
start_state_t login_o1_start_load_key(start_ctx_t *c);
start_state_t login_o1_start_request_token(start_ctx_t *c);
start_state_t login_o1_start_store(start_ctx_t *c);
void login_o1_start_cleanup(start_ctx_t *c);

/* login.finish */
fin_state_t login_o1_consume(fin_ctx_t *c);
fin_state_t login_o1_denied(fin_ctx_t *c);
fin_state_t login_o1_load_key(fin_ctx_t *c);
fin_state_t login_o1_access_token(fin_ctx_t *c);
void login_o1_finish_cleanup(fin_ctx_t *c);

#endif
