/* Naive double-precision reference implementations of every op, used as the
 * oracle for forward outputs and (through finite differences) for gradients. */
#ifndef PARE_TEST_REF_H
#define PARE_TEST_REF_H

#include "graph/graph.h"

/* Forward of node `node` on n samples: x[j] are the inputs (n x size each),
 * w[k] the parameters in the node's order, y the output. training selects
 * batch statistics for batchnorm; dropout uses keep (n x size bytes) when
 * training, or is the identity when keep is NULL. */
void ref_forward(const pare_graph *g, int node, int n, int training, const double *const *x,
                 const double *const *w, const uint8_t *keep, double *y);

/* The whole graph in double: values[v] (n x size of v) for every node; the
 * input is values[0]. Parameters come from w[param] (double copies). */
void ref_graph_forward(const pare_graph *g, int n, int training, double **values,
                       double *const *w);

/* Double copies of every parameter (free with ref_params_free). */
double **ref_params_new(const pare_graph *g);
void ref_params_free(const pare_graph *g, double **w);

#endif
