# Sourced by the comparison-kit scripts (peer_compare.sh, per_process.sh):
# the kit's driver is one client address, so `make run` gets the per-client
# budgets lifted, as `VAR=value` words for env.
KIT_LIMITS="PORTICO_LOGIN_RATE_PER_MINUTE=100000 PORTICO_CALLBACK_RATE_PER_MINUTE=100000 \
PORTICO_PENDING_LOGINS_PER_BROWSER=1000 PORTICO_PENDING_LOGINS_MAX=10000000 PORTICO_MAX_CONNECTIONS_PER_CLIENT=1024"
