/* The Admin section: what admin.c, admin_integrations.c and admin_users.c
 * share. Every admin handler starts with admin_enter(), which decides who
 * may be here (an admin, or the holder of the setup token while Setup Mode
 * is on) and, for a POST, checks Origin and the CSRF token first. */
#ifndef PORTICO_WEB_ADMIN_H
#define PORTICO_WEB_ADMIN_H

#include "bus_methods.h"
#include "iform.h"
#include "reply.h"

#include "broker.pb-c.h"
#include "registry.pb-c.h"

/* Size limit of the setup token (the integration form's are in iform.h). */
#define ADMIN_MAX_SETUP_TOKEN 256

typedef struct {
    const web_session_t *s;
    char actor[256];   /* for the audit log: the admin's user name or "setup-token" */
    bool setup_actor;  /* a Setup Mode session (no account) */
    bool setup_mode;   /* Setup Mode is on */
    bool admin_exists; /* known only when setup_mode */
} admin_ctx_t;

/* Let the request in, or answer it (setup token form, redirect to the
 * login, 403) and return false. POSTs are checked for Origin and CSRF
 * before anything else. */
bool admin_enter(web_req_t *r, admin_ctx_t *a);

/* The request path without the public URL's path prefix. */
const char *admin_path(web_req_t *r);
bool admin_is_post(web_req_t *r);

/* The values of an admin page's template: the layout's, the Setup Mode
 * banner's and the admin navigation's (templates/admin_top.html); current
 * is the entry to highlight ("integrations", "users", "audit"). */
tmpl_ctx_t *admin_page_ctx(web_req_t *r, const admin_ctx_t *a, const char *title, const char *current);

/* Bus calls with the right deadline: the registry with bus_timeout_ms, the
 * broker (which talks to Bitbucket) with login_timeout_ms. */
int admin_registry(web_req_t *r, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **rep,
                   bus_error_t *err);
int admin_broker(web_req_t *r, const bus_method_t *m, const ProtobufCMessage *req, ProtobufCMessage **rep,
                 bus_error_t *err);

/* {PORTICO_PUBLIC_URL}/oauth/callback/{id}: the contract with the login
 * flow. Built from configuration only, never from request headers. */
void admin_callback_url(int64_t id, char *out, size_t out_size);

/* A positive decimal id from a query parameter or form field, or 0. */
int64_t admin_parse_id(const char *s);

/* The setup token form's POST (admin.c). */
void admin_setup_token(web_req_t *r);

/* Handlers (admin_integrations.c, admin_users.c). */
void admin_integration_new(web_req_t *r);
void admin_integration_create(web_req_t *r);
void admin_users(web_req_t *r);
void admin_audit(web_req_t *r);

/* Used by the home page and the integration page. */
/* The values of the state badge and the last test result
 * (templates/integration_state.html, test_result.html) for in. */
void admin_integration_values(tmpl_ctx_t *c, const Portico__Registry__Integration *in);

#endif
