/* Model set-ups shared by the engine tests: zoo models given batch-norm
 * statistics and biases that are not the initial ones, and pruned. */
#ifndef PARE_TEST_MODELS_H
#define PARE_TEST_MODELS_H

#include <stdint.h>

#include "graph/graph.h"

/* Seeded BN statistics (variance and gamma in [0.5, 1.5), mean and beta) and
 * biases (both in [-0.1, 0.1)), so folding and fusion have something to get wrong. */
void test_random_stats(pare_graph *g, uint64_t seed);
/* Prunes g to `scheme` at sparsity sp (one line, and g unchanged, when the
 * scheme does not apply). */
void test_prune_to(pare_graph *g, const char *scheme, double sp);

#endif
