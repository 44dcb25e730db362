/* The web's settings, read and checked once at start (service.h). */
#include "web.h"

#include "log.h"
#include "url.h"

#include <stdio.h>
#include <string.h>

#define T web_config_t
const config_var_t web_config_vars[] = {
    CONFIG_VAR_URL(T, "PORTICO_PUBLIC_URL", "http://localhost:8080", public_url),
    CONFIG_VAR_ADDR(T, "PORTICO_HTTP_ADDR", "0.0.0.0:8080", http_addr),
    CONFIG_VAR_ADDR(T, "PORTICO_OPS_ADDR", "127.0.0.1:9090", ops_addr),
    CONFIG_VAR_ENDPOINTS(T, "PORTICO_REGISTRY_ENDPOINT", "tcp://127.0.0.1:5551", registry_endpoint),
    CONFIG_VAR_ENDPOINTS(T, "PORTICO_BITBUCKET_ENDPOINT", "tcp://127.0.0.1:5552", bitbucket_endpoint),
    CONFIG_VAR_ENDPOINT(T, "PORTICO_BROKER_BIND", "tcp://127.0.0.1:5553", broker_bind),
    CONFIG_VAR_INT(T, "PORTICO_WEB_THREADS", 128, 2, 1024, threads),
    CONFIG_VAR_INT_SCALED(T, "PORTICO_SESSION_IDLE_MINUTES", 30, 1, 24 * 60, 60, session_idle_s),
    CONFIG_VAR_INT_SCALED(T, "PORTICO_SESSION_MAX_HOURS", 12, 1, 24 * 30, 3600, session_max_s),
    CONFIG_VAR_INT(T, "PORTICO_BUS_TIMEOUT_MS", 5000, 100, 60000, bus_timeout_ms),
    CONFIG_VAR_INT(T, "PORTICO_LOGIN_TIMEOUT_MS", 15000, 500, 120000, login_timeout_ms),
    CONFIG_VAR_INT_SCALED(T, "PORTICO_SESSION_CACHE_SECONDS", 5, 0, 60, 1000, session_cache_ms),
    CONFIG_VAR_INT_SCALED(T, "PORTICO_REPOSITORY_CACHE_SECONDS", 30, 0, 600, 1000, repos_cache_ms),
    CONFIG_VAR_STRING(T, "PORTICO_TRUSTED_PROXIES", "", trusted_proxies_text),
    CONFIG_VAR_INT(T, "PORTICO_LOGIN_RATE_PER_MINUTE", 20, 1, 100000, login_rate),
    CONFIG_VAR_INT(T, "PORTICO_CALLBACK_RATE_PER_MINUTE", 20, 1, 100000, callback_rate),
    CONFIG_VAR_INT(T, "PORTICO_SETUP_TOKEN_FAILURES_PER_MINUTE", 5, 1, 1000, setup_failure_rate),
    CONFIG_VAR_INT(T, "PORTICO_HEADER_TIMEOUT_MS", 10000, 100, 120000, header_timeout_ms),
    CONFIG_VAR_INT(T, "PORTICO_MAX_CONNECTIONS_PER_CLIENT", 32, 1, 100000, max_conns_per_client),
    CONFIG_VAR_INT(T, "PORTICO_MAX_CONNECTIONS", 4096, 16, 1000000, max_conns),
    /* The broker reads it too: a pending login lives this long. */
    CONFIG_VAR_INT(T, "PORTICO_LOGIN_TTL_SECONDS", 600, 30, 3600, login_ttl_s),
    CONFIG_VAR_END,
};
#undef T

int web_config_load(web_config_t *c, config_error_t *err)
{
    memset(c, 0, sizeof *c);
    if (config_load(web_config_vars, c, err) < 0)
        return -1;
    c->secure = url_is_https(c->public_url);
    /* Split into origin and path prefix: the Origin check needs the former,
     * links and cookies the latter. */
    const char *after_scheme = strstr(c->public_url, "://") + 3;
    const char *slash = strchr(after_scheme, '/');
    size_t olen = slash ? (size_t)(slash - c->public_url) : strlen(c->public_url);
    snprintf(c->public_origin, sizeof c->public_origin, "%.*s", (int)olen, c->public_url);
    snprintf(c->public_path, sizeof c->public_path, "%s", slash ? slash : "");
    if (!strcmp(strrchr(c->ops_addr, ':'), strrchr(c->http_addr, ':')))
        return config_fail(err, "PORTICO_OPS_ADDR", "must use another port than PORTICO_HTTP_ADDR (%s)", c->http_addr);
    snprintf(c->session_cookie, sizeof c->session_cookie, "%s",
             c->secure ? "__Host-portico_session" : "portico_session");
    snprintf(c->login_cookie, sizeof c->login_cookie, "%s", c->secure ? "__Host-portico_login" : "portico_login");
    char why[200];
    if (netaddr_list_parse(c->trusted_proxies_text, &c->trusted_proxies, why, sizeof why) < 0)
        return config_fail(err, "PORTICO_TRUSTED_PROXIES", "%s", why);
    if (c->secure && c->public_path[0])
        log_warn("PORTICO_PUBLIC_URL has a path: cookies still use Path=/ as the __Host- prefix requires", NULL);
    return 0;
}
