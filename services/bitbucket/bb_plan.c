/* The plan of one HTTP request (bb_methods.h): releasing it, and keeping
 * a chain's state from one request to the next. Apart from bb_methods.c
 * so that bb_login.c, which bb_methods.c's table names, can use it too. */
#include "bb_methods.h"

#include "bb_url.h"

#include <stdlib.h>
#include <string.h>

void bb_plan_clear(bb_plan_t *plan)
{
    free(plan->url);
    bb_free_secret(plan->body);
    free(plan->ca_pem);
    free(plan->accept);
    bb_free_secret(plan->bearer);
    free(plan->o1_consumer_key);
    bb_free_secret(plan->o1_private_key);
    bb_free_secret(plan->o1_token);
    free(plan->o1_callback);
    bb_free_secret(plan->o1_verifier);
    if (plan->steps && plan->steps_free)
        plan->steps_free(plan->steps);
    memset(plan, 0, sizeof *plan);
}

void bb_plan_next(bb_plan_t *plan)
{
    void *steps = plan->steps;
    void (*steps_free)(void *) = plan->steps_free;
    plan->steps = NULL;
    bb_plan_clear(plan);
    plan->steps = steps;
    plan->steps_free = steps_free;
}
