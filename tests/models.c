/* Model set-ups shared by the engine tests (models.h). */
#include "models.h"

#include <stdio.h>

#include "compress/prune.h"
#include "core/rng.h"

void test_random_stats(pare_graph *g, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 11, 0, 0);
    for (int i = 0; i < g->n_params; i++) {
        pare_param *p = &g->params[i];
        for (size_t k = 0; k < p->t->n; k++) {
            double u = pare_rng_uniform_d(&r);
            switch (p->role) {
            case PARE_ROLE_BN_VAR: p->t->data[k] = (float)(0.5 + u); break;
            case PARE_ROLE_BN_MEAN:
            case PARE_ROLE_BN_BETA:
            case PARE_ROLE_BIAS: p->t->data[k] = (float)(u - 0.5) * 0.2f; break;
            case PARE_ROLE_BN_GAMMA: p->t->data[k] = (float)(0.5 + u); break;
            default: break;
            }
        }
    }
}

void test_prune_to(pare_graph *g, const char *scheme, double sp)
{
    pare_prune_options po = {scheme, sp, 0, NULL, 0, 0};
    pare_prune_plan plan;
    if (pare_prune_plan_new(g, &po, &plan) != PARE_OK) {
        printf("  (scheme %s: %s)\n", scheme, pare_last_error());
        return;
    }
    pare_prune_apply(g, &plan, NULL, NULL);
    pare_prune_plan_free(&plan);
}
