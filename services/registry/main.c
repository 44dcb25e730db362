/* portico-registry: the only Portico process with database credentials.
 * Without arguments (or with "serve") it serves the registry API on the
 * bus; "healthcheck" probes a running one; the rest are operator commands
 * (cli.h). */
#include "bus.h"
#include "cli.h"
#include "options.h"
#include "server.h"
#include "service.h"

static reg_options_t s_opts;

static int s_load_config(config_error_t *err)
{
    return reg_options_load(&s_opts, err);
}

static const char *s_health_addr(void)
{
    return s_opts.health_addr;
}

static int s_run(void)
{
    return server_run(&s_opts);
}

static int s_command(int argc, char **argv)
{
    return cli_main(argc, argv, &s_opts);
}

int main(int argc, char **argv)
{
    static const service_def_t registry = {
        .name = "registry",
        .load_config = s_load_config,
        .health_addr = s_health_addr,
        .health_path = "/readyz",
        .bus_serves = BUS_WEB | BUS_BROKER, /* only they call the registry */
        .bus_calls = 0,
        .run = s_run,
        .command = s_command,
        .is_command = cli_is_command,
        .usage = cli_usage,
    };
    return service_main(&registry, argc, argv);
}
