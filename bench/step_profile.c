/* Per-layer time of training steps (forward and backward) on a zoo model with
 * random inputs: where a training step spends its time.
 * usage: step_profile MODEL [BATCH] [THREADS] [STEPS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "graph/exec.h"
#include "graph/graph.h"
#include "graph/op.h"
#include "ops/loss.h"
#include "train/train.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "fmnist-cnn";
    int batch = argc > 2 ? atoi(argv[2]) : 128, threads = argc > 3 ? atoi(argv[3]) : 2;
    int steps = argc > 4 ? atoi(argv[4]) : 20;
    pare_graph *g;
    if (pare_zoo_build(name, 0, 0, &g) != PARE_OK) {
        fprintf(stderr, "%s\n", pare_last_error());
        return 1;
    }
    pare_exec *e;
    if (pare_exec_new(g, batch, 1, threads, &e) != PARE_OK) {
        fprintf(stderr, "%s\n", pare_last_error());
        return 1;
    }
    pare_train_config c;
    pare_train_config_init(&c);
    pare_optim *o;
    pare_optim_new(g, &c, &o);
    size_t isz = pare_shape_size(g->nodes[0].out) * (size_t)batch;
    float *in = pare_exec_input(e);
    for (size_t i = 0; i < isz; i++)
        in[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    int k = g->nodes[g->output].out.c;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)batch);
    for (int i = 0; i < batch; i++)
        lab[i] = i % k;
    double t_loss = 0, t_opt = 0, t_all = 0;
    for (int s = -3; s < steps; s++) {
        if (s == 0)
            pare_exec_profile(e, 1);
        double t0 = now_s();
        pare_exec_forward(e, batch, (uint64_t)s);
        double t1 = now_s();
        pare_softmax_xent(pare_exec_output(e), lab, batch, k, pare_exec_output_grad(e), NULL);
        double t2 = now_s();
        pare_exec_backward(e, batch);
        double t3 = now_s();
        pare_optim_step(o, g, e, 0.01f, threads);
        double t4 = now_s();
        if (s >= 0) {
            t_loss += t2 - t1;
            t_opt += t4 - t3;
            t_all += t4 - t0;
        }
    }
    printf("%s batch %d threads %d: %.2f ms/step, %.0f img/s\n", name, batch, threads,
           1e3 * t_all / steps, batch * steps / t_all);
    printf("%-22s %-10s %9s %9s\n", "layer", "op", "fwd ms", "bwd ms");
    double sf = 0, sb = 0;
    for (int v = 1; v < g->n_nodes; v++) {
        double f, b;
        pare_exec_profile_get(e, v, &f, &b);
        sf += f;
        sb += b;
        printf("%-22s %-10s %9.3f %9.3f\n", g->nodes[v].name, pare_op_get(g->nodes[v].op)->name,
               1e3 * f / steps, 1e3 * b / steps);
    }
    printf("%-22s %-10s %9.3f %9.3f\nloss %.3f ms, optimizer %.3f ms, other %.3f ms\n", "sum", "",
           1e3 * sf / steps, 1e3 * sb / steps, 1e3 * t_loss / steps, 1e3 * t_opt / steps,
           1e3 * (t_all - sf - sb - t_loss - t_opt) / steps);
    pare_optim_free(o);
    pare_exec_free(e);
    pare_graph_free(g);
    free(lab);
    return 0;
}
