/* The web's shared state (web.h): the configuration read at start and the
 * parts every worker thread uses. Defined here, below every other module,
 * so that using them does not make a module depend on main.c. */
#include "web.h"

web_config_t web_cfg;
brokerq_t *web_brokerq;
webcache_t *web_cache;
ratelimit_t *web_limits;
gate_t *web_gate;
