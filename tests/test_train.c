/* Training: schedules, optimizer steps against hand-computed values, same
 * seed and threads giving the same bytes, resume after SIGKILL giving the
 * same final model, masks and frozen layers kept, bad input refused, and
 * LeNet learning Fashion-MNIST. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fsio.h"
#include "core/rng.h"
#include "graph/graph.h"
#include "synth.h"
#include "test.h"
#include "train/train.h"

PARE_TEST(train_schedule)
{
    pare_train_config c;
    pare_train_config_init(&c);
    c.lr = 0.1f;
    /* cosine over 100 steps, PyTorch's CosineAnnealingLR in closed form */
    CHECK_NEAR(pare_lr_at(&c, 0, 100, 10), 0.1, 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 50, 100, 10), 0.05, 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 25, 100, 10), 0.1 * 0.5 * (1 + cos(3.14159265358979 / 4)), 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 100, 100, 10), 0.0, 1e-7);
    /* linear warm-up then cosine over the remaining steps */
    c.warmup_steps = 10;
    CHECK_NEAR(pare_lr_at(&c, 0, 110, 10), 0.01, 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 9, 110, 10), 0.1, 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 10, 110, 10), 0.1, 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 60, 110, 10), 0.05, 1e-7);
    c.warmup_steps = 0;
    c.schedule = PARE_SCHED_STEP;
    c.step_epochs = 2;
    c.step_gamma = 0.5f;
    CHECK_NEAR(pare_lr_at(&c, 19, 100, 10), 0.1, 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 20, 100, 10), 0.05, 1e-7);
    CHECK_NEAR(pare_lr_at(&c, 45, 100, 10), 0.025, 1e-7);
    c.schedule = PARE_SCHED_CONSTANT;
    CHECK_NEAR(pare_lr_at(&c, 77, 100, 10), 0.1, 1e-7);
}

/* A 2-in, 2-out linear model without bias, so one step can be done by hand. */
static pare_graph *tiny_linear(void)
{
    pare_graph *g = pare_graph_new("tiny");
    int x = pare_graph_input(g, 2, 1, 1);
    pare_graph_linear(g, x, 2, 0, "fc");
    float *w = g->params[0].t->data;
    w[0] = 0.5f;
    w[1] = -0.25f;
    w[2] = 0.125f;
    w[3] = 1.0f;
    return g;
}

/* d(loss)/dW for one sample x with label y: (softmax(Wx) - onehot) x^T. */
static void hand_grad(const double *w, const double *x, int y, double *gw)
{
    double z0 = w[0] * x[0] + w[1] * x[1], z1 = w[2] * x[0] + w[3] * x[1];
    double m = z0 > z1 ? z0 : z1, e0 = exp(z0 - m), e1 = exp(z1 - m);
    double p[2] = {e0 / (e0 + e1), e1 / (e0 + e1)};
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < 2; i++)
            gw[o * 2 + i] = (p[o] - (o == y)) * x[i];
}

PARE_TEST(train_optimizer_steps)
{
    const float x[2] = {1.0f, -2.0f};
    const int32_t y = 1;
    for (int kind = 0; kind < 3; kind++) {
        pare_graph *g = tiny_linear();
        pare_train_config c;
        pare_train_config_init(&c);
        c.batch = 1;
        c.lr = 0.1f;
        c.schedule = PARE_SCHED_CONSTANT;
        c.threads = 1;
        c.weight_decay = 0.01f;
        if (kind == 1)
            c.nesterov = 1;
        if (kind == 2) {
            c.optimizer = PARE_OPT_ADAMW;
            c.lr = 0.01f;
        }
        pare_trainer *t;
        CHECK_OK(pare_trainer_new(g, &c, &t));
        double w[4], buf[4] = {0}, m[4] = {0}, v[4] = {0};
        for (int i = 0; i < 4; i++)
            w[i] = g->params[0].t->data[i];
        double xd[2] = {x[0], x[1]};
        for (int step = 1; step <= 3; step++) {
            CHECK_OK(pare_trainer_step(t, x, &y, 1, NULL));
            double gw[4];
            hand_grad(w, xd, y, gw);
            for (int i = 0; i < 4; i++) {
                if (kind < 2) {
                    double gi = gw[i] + 0.01 * w[i];
                    buf[i] = step == 1 ? gi : 0.9 * buf[i] + gi;
                    w[i] -= 0.1 * (kind == 1 ? gi + 0.9 * buf[i] : buf[i]);
                } else {
                    w[i] -= 0.01 * 0.01 * w[i];
                    m[i] = 0.9 * m[i] + 0.1 * gw[i];
                    v[i] = 0.999 * v[i] + 0.001 * gw[i] * gw[i];
                    double mh = m[i] / (1 - pow(0.9, step)), vh = v[i] / (1 - pow(0.999, step));
                    w[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
                }
            }
            for (int i = 0; i < 4; i++)
                CHECK_NEAR(g->params[0].t->data[i], w[i], 1e-5);
        }
        pare_trainer_free(t);
        pare_graph_free(g);
    }
}

static const char *synth_dir(void)
{
    static char dir[1024];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", pare_test_path("synth"));
        mkdir(dir, 0755);
        if (synth_write_idx(dir, 2000, 500, 11) != 0)
            pare_test_fail(__FILE__, __LINE__, "cannot write the synthetic dataset in %s", dir);
    }
    return dir;
}

static void synth_open(pare_dataset **tr, pare_dataset **te)
{
    CHECK_OK(pare_dataset_open(synth_dir(), PARE_SPLIT_TRAIN, tr));
    CHECK_OK(pare_dataset_open(synth_dir(), PARE_SPLIT_TEST, te));
}

static pare_status train_once(const char *model, int threads, int epochs, const char *out,
                              double *acc)
{
    pare_dataset *tr = NULL, *te = NULL;
    synth_open(&tr, &te);
    pare_dataset_limit(tr, 800);
    pare_graph *g;
    pare_status s = pare_zoo_build(model, 0, 3, &g);
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = epochs;
    c.batch = 32;
    c.threads = threads;
    c.seed = 3;
    pare_trainer *t = NULL;
    if (s == PARE_OK)
        s = pare_trainer_new(g, &c, &t);
    if (s == PARE_OK)
        s = pare_trainer_run(t, tr, te);
    pare_epoch_stats st;
    if (s == PARE_OK && acc && pare_trainer_epoch_stats(t, epochs, &st) == PARE_OK)
        *acc = st.test_acc;
    if (s == PARE_OK)
        s = pare_graph_save(g, out);
    pare_trainer_free(t);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
    return s;
}

static int same_file(const char *a, const char *b)
{
    uint8_t *x, *y;
    size_t nx, ny;
    if (pare_read_file(a, (size_t)1 << 30, &x, &nx) != PARE_OK)
        return 0;
    if (pare_read_file(b, (size_t)1 << 30, &y, &ny) != PARE_OK) {
        free(x);
        return 0;
    }
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

PARE_TEST(train_deterministic)
{
    /* Same seed and thread count: the same bytes. fmnist-cnn covers BN. */
    for (int threads = 1; threads <= 2; threads++) {
        char a[1100], b[1100];
        snprintf(a, sizeof a, "%s", pare_test_path("a.pare"));
        snprintf(b, sizeof b, "%s", pare_test_path("b.pare"));
        double acc = 0;
        CHECK_OK(train_once("fmnist-cnn", threads, 1, a, &acc));
        CHECK_OK(train_once("fmnist-cnn", threads, 1, b, NULL));
        CHECKF(same_file(a, b), "two runs with %d threads differ", threads);
        CHECKF(acc > 0.8, "fmnist-cnn learns the synthetic bars: %.3f", acc);
    }
}

/* Runs the pare binary with argv (NULL-terminated); returns its pid. */
static pid_t spawn(char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

PARE_TEST(train_resume_after_sigkill)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin) {
        printf("  skipped: PARE_BIN is not set (run through make check)\n");
        return;
    }
    char full[1100], part[1100];
    snprintf(full, sizeof full, "%s", pare_test_path("full.pare"));
    snprintf(part, sizeof part, "%s", pare_test_path("part.pare"));
    const char *dir = synth_dir();
    char *args[32];
    int na = 0;
    args[na++] = strdup(bin);
    args[na++] = strdup("train");
    args[na++] = strdup("--model");
    args[na++] = strdup("lenet");
    args[na++] = strdup("--data");
    args[na++] = strdup(dir);
    args[na++] = strdup("--epochs");
    args[na++] = strdup("3");
    args[na++] = strdup("--batch");
    args[na++] = strdup("8");
    args[na++] = strdup("--threads");
    args[na++] = strdup("2");
    args[na++] = strdup("--checkpoint-every");
    args[na++] = strdup("7");
    args[na++] = strdup("--quiet");
    args[na++] = strdup("--out");
    int out_at = na;
    args[na++] = full;
    args[na] = NULL;
    int status;
    pid_t pid = spawn(args);
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "uninterrupted run failed");
    /* Now kill runs at random moments until one finishes. */
    args[out_at] = part;
    args[na++] = strdup("--resume");
    args[na] = NULL;
    pare_rng r;
    pare_rng_seed(&r, (uint64_t)time(NULL), 9, 0, 0);
    int kills = 0, finished = 0;
    for (int attempt = 0; attempt < 40 && !finished; attempt++) {
        pid = spawn(args);
        struct timespec ts = {0, (long)(30 + pare_rng_below(&r, 400)) * 1000000L};
        nanosleep(&ts, NULL);
        if (attempt < 30 && kill(pid, SIGKILL) == 0)
            kills++;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status)) {
            CHECKF(WEXITSTATUS(status) == 0, "a resumed run exited with %d", WEXITSTATUS(status));
            finished = WEXITSTATUS(status) == 0;
        }
    }
    CHECK(finished);
    printf("  %d runs killed with SIGKILL before one finished\n", kills);
    CHECKF(same_file(full, part), "the resumed model differs from the uninterrupted one");
    for (int i = 0; i < na; i++)
        if (args[i] != full && args[i] != part)
            free(args[i]);
}

PARE_TEST(train_resume_refuses_other_options)
{
    char out[1100], ck[1100];
    snprintf(out, sizeof out, "%s", pare_test_path("r.pare"));
    snprintf(ck, sizeof ck, "%s", pare_test_path("r.pare.ckpt"));
    pare_dataset *tr, *te;
    synth_open(&tr, &te);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 2;
    c.batch = 64;
    c.checkpoint_path = ck;
    c.checkpoint_every = 5;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_OK(pare_trainer_run(t, tr, NULL));
    pare_trainer_free(t);
    c.lr = 0.1f;
    c.resume = 1;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_STATUS(pare_trainer_run(t, tr, NULL), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "--lr") != NULL);
    pare_trainer_free(t);
    /* A model file is not a checkpoint. */
    CHECK_OK(pare_graph_save(g, out));
    c.lr = 0.05f;
    c.checkpoint_path = out;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_STATUS(pare_trainer_run(t, tr, NULL), PARE_EFORMAT);
    CHECK(strstr(pare_last_error(), "not a checkpoint") != NULL);
    pare_trainer_free(t);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(train_masks_and_frozen_layers)
{
    pare_dataset *tr, *te;
    synth_open(&tr, &te);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("fmnist-cnn", 0, 0, &g));
    /* Mask half of fc1's weights; freeze block1 (conv and BN, with its statistics). */
    int fc1 = pare_graph_find_node(g, "fc1"), conv1 = pare_graph_find_node(g, "block1.conv");
    int bn1 = pare_graph_find_node(g, "block1.bn");
    pare_param *w = &g->params[pare_graph_node_param(g, fc1, PARE_ROLE_WEIGHT)];
    w->mask = malloc(w->t->n);
    for (size_t i = 0; i < w->t->n; i++) {
        w->mask[i] = (uint8_t)(i % 2);
        if (!w->mask[i])
            w->t->data[i] = 0.0f;
    }
    int frozen[8], nf = 0;
    for (int k = 0; k < g->nodes[conv1].n_param; k++)
        frozen[nf++] = g->nodes[conv1].param[k];
    for (int k = 0; k < g->nodes[bn1].n_param; k++)
        frozen[nf++] = g->nodes[bn1].param[k];
    float *before[8];
    for (int i = 0; i < nf; i++) {
        pare_param *p = &g->params[frozen[i]];
        p->frozen = 1;
        before[i] = malloc(sizeof(float) * p->t->n);
        memcpy(before[i], p->t->data, sizeof(float) * p->t->n);
    }
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 1;
    c.batch = 64;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_OK(pare_trainer_run(t, tr, te));
    size_t nonzero = 0;
    for (size_t i = 0; i < w->t->n; i++) {
        if (!w->mask[i])
            CHECK(w->t->data[i] == 0.0f);
        else
            nonzero += w->t->data[i] != 0.0f;
    }
    CHECK(nonzero > w->t->n / 2 - 100);
    for (int i = 0; i < nf; i++) {
        pare_param *p = &g->params[frozen[i]];
        CHECKF(memcmp(before[i], p->t->data, sizeof(float) * p->t->n) == 0, "frozen %s changed", p->name);
        free(before[i]);
    }
    pare_epoch_stats st;
    CHECK_OK(pare_trainer_epoch_stats(t, 1, &st));
    CHECK(st.test_acc > 0.8);
    pare_trainer_free(t);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(train_bad_input)
{
    pare_dataset *tr, *te;
    synth_open(&tr, &te);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("resnet20", 0, 0, &g));
    pare_train_config c;
    pare_train_config_init(&c);
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_STATUS(pare_trainer_run(t, tr, te), PARE_ESHAPE);
    CHECK(strstr(pare_last_error(), "1x28x28") && strstr(pare_last_error(), "3x32x32"));
    pare_trainer_free(t);
    pare_graph_free(g);
    /* 4 classes cannot hold labels 0..9 */
    CHECK_OK(pare_zoo_build("lenet", 4, 0, &g));
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_STATUS(pare_trainer_run(t, tr, te), PARE_ESHAPE);
    CHECK(strstr(pare_last_error(), "10 classes") != NULL);
    pare_trainer_free(t);
    pare_train_config b = c;
    b.epochs = 0;
    CHECK_STATUS(pare_trainer_new(g, &b, &t), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "epochs"));
    b = c;
    b.lr = -1;
    CHECK_STATUS(pare_trainer_new(g, &b, &t), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "learning rate"));
    b = c;
    b.momentum = 1.0f;
    CHECK_STATUS(pare_trainer_new(g, &b, &t), PARE_EINVAL);
    b = c;
    b.resume = 1;
    CHECK_STATUS(pare_trainer_new(g, &b, &t), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "checkpoint path"));
    /* a step with a label outside the classes */
    CHECK_OK(pare_trainer_new(g, &c, &t));
    float x[784] = {0};
    int32_t lab = 7;
    CHECK_STATUS(pare_trainer_step(t, x, &lab, 1, NULL), PARE_EINVAL);
    pare_trainer_free(t);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

PARE_TEST(train_evaluate_matches_forward)
{
    pare_dataset *tr, *te;
    synth_open(&tr, &te);
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 0, 5, &g));
    pare_eval_result er;
    CHECK_OK(pare_evaluate(g, te, 64, 2, &er));
    CHECK(er.samples == pare_dataset_size(te));
    /* Recount with pare_graph_forward on the same normalised inputs. */
    long n = pare_dataset_size(te);
    float *x = malloc(sizeof(float) * 784 * (size_t)n), *out = malloc(sizeof(float) * 10 * (size_t)n);
    uint8_t *raw = malloc(784 * (size_t)n), *lab = malloc((size_t)n);
    char p[1100];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", synth_dir());
    FILE *f = fopen(p, "rb");
    CHECK(f && fseek(f, 16, SEEK_SET) == 0 && fread(raw, 784, (size_t)n, f) == (size_t)n);
    fclose(f);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", synth_dir());
    f = fopen(p, "rb");
    CHECK(f && fseek(f, 8, SEEK_SET) == 0 && fread(lab, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    for (long i = 0; i < 784 * n; i++)
        x[i] = raw[i] / 255.0f; /* a folder of IDX files: mean 0, std 1 */
    CHECK_OK(pare_graph_forward(g, x, (int)n, out, 2));
    long right = 0;
    for (long i = 0; i < n; i++) {
        int arg = 0;
        for (int k = 1; k < 10; k++)
            if (out[i * 10 + k] > out[i * 10 + arg])
                arg = k;
        right += arg == lab[i];
    }
    CHECK_NEAR(er.accuracy, (double)right / (double)n, 1e-12);
    free(x);
    free(out);
    free(raw);
    free(lab);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}

/* Mean, standard deviation, largest magnitude and share beyond k standard deviations. */
static void value_stats(const float *x, size_t n, double k_sd, double *mean, double *sd, double *amax,
                        double *beyond)
{
    double s = 0, q = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        q += (double)x[i] * x[i];
        m = fabs(x[i]) > m ? fabs(x[i]) : m;
    }
    *mean = s / (double)n;
    *sd = sqrt(q / (double)n - *mean * *mean);
    *amax = m;
    size_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += fabs(x[i]) > k_sd * *sd;
    *beyond = (double)b / (double)n;
}

PARE_TEST(init_schemes_draw_their_distributions)
{
    pare_graph *g = pare_graph_new("init");
    int x = pare_graph_input(g, 64, 6, 6);
    x = pare_graph_conv2d(g, x, 128, 3, 1, 1, "conv"); /* fan_in 576, fan_out 1152 */
    x = pare_graph_batchnorm(g, x, "bn");
    x = pare_graph_flatten(g, x, "flat");
    pare_graph_linear(g, x, 300, 1, "fc"); /* fan_in 4608, fan_out 300 */
    CHECK_OK(pare_graph_status(g));
    size_t nw, nb, nfw, nfb, ng;
    float *w = pare_graph_param_data(g, "conv.weight", &nw), *b = pare_graph_param_data(g, "conv.bias", &nb);
    float *fw = pare_graph_param_data(g, "fc.weight", &nfw), *fb = pare_graph_param_data(g, "fc.bias", &nfb);
    float *gamma = pare_graph_param_data(g, "bn.gamma", &ng);
    CHECK(w && b && fw && fb && gamma && nw == 73728 && nfw == 300 * 4608);
    double mean, sd, amax, beyond;

    CHECK_OK(pare_graph_init_params_as(g, 7, PARE_INIT_HE_NORMAL));
    value_stats(w, nw, 2.0, &mean, &sd, &amax, &beyond);
    CHECK_NEAR(sd, sqrt(2.0 / 576), 0.01 * sqrt(2.0 / 576));
    CHECK(fabs(mean) < 0.02 * sd);
    CHECK_NEAR(beyond, 0.0455, 0.005); /* a normal's share beyond 2 sd; a uniform has none */
    value_stats(fw, nfw, 2.0, &mean, &sd, &amax, &beyond);
    CHECK_NEAR(sd, sqrt(2.0 / 4608), 0.01 * sqrt(2.0 / 4608));
    for (size_t i = 0; i < nb; i++)
        CHECK(b[i] == 0.0f);
    for (size_t i = 0; i < nfb; i++)
        CHECK(fb[i] == 0.0f);
    for (size_t i = 0; i < ng; i++)
        CHECK(gamma[i] == 1.0f);
    float w0 = w[0], w1 = w[12345];
    CHECK_OK(pare_graph_init_params_as(g, 7, PARE_INIT_HE_NORMAL)); /* same seed: same values */
    CHECK(w[0] == w0 && w[12345] == w1);

    CHECK_OK(pare_graph_init_params_as(g, 7, PARE_INIT_HE_UNIFORM));
    value_stats(w, nw, 1.0, &mean, &sd, &amax, &beyond);
    double bound = sqrt(6.0 / 576);
    CHECK(amax <= bound && amax > 0.999 * bound);
    CHECK_NEAR(sd, sqrt(2.0 / 576), 0.01 * sqrt(2.0 / 576)); /* U(±a) has variance a²/3 */
    CHECK_NEAR(beyond, 1.0 - 1.0 / sqrt(3.0), 0.01);       /* share beyond one sd */
    CHECK(b[5] == 0.0f);

    CHECK_OK(pare_graph_init_params_as(g, 7, PARE_INIT_XAVIER_UNIFORM));
    value_stats(fw, nfw, 1.0, &mean, &sd, &amax, &beyond);
    bound = sqrt(6.0 / (4608 + 300));
    CHECK(amax <= bound && amax > 0.999 * bound);
    value_stats(w, nw, 1.0, &mean, &sd, &amax, &beyond);
    bound = sqrt(6.0 / (576 + 1152));
    CHECK(amax <= bound && amax > 0.999 * bound);

    CHECK_OK(pare_graph_init_params_as(g, 8, PARE_INIT_DEFAULT)); /* PyTorch's: biases drawn too */
    value_stats(w, nw, 1.0, &mean, &sd, &amax, &beyond);
    CHECK(amax <= 1.0 / sqrt(576) && amax > 0.999 / sqrt(576));
    value_stats(b, nb, 1.0, &mean, &sd, &amax, &beyond);
    CHECK(amax > 0.5 / sqrt(576) && amax <= 1.0 / sqrt(576));
    float d0 = w[0];
    CHECK_OK(pare_graph_init_params(g, 8));
    CHECK(w[0] == d0);

    CHECK_STATUS(pare_graph_init_params_as(g, 8, (pare_init_scheme)9), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "scheme 9"));
    pare_graph_free(g);
}

PARE_TEST(train_lenet_fashion_mnist)
{
    pare_dataset *tr = NULL, *te = NULL;
    if (pare_dataset_open("fashion-mnist", PARE_SPLIT_TRAIN, &tr) != PARE_OK) {
        printf("  skipped: %s\n", pare_last_error());
        return;
    }
    CHECK_OK(pare_dataset_open("fashion-mnist", PARE_SPLIT_TEST, &te));
    CHECK_OK(pare_dataset_limit(tr, 5000));
    pare_graph *g;
    CHECK_OK(pare_zoo_build("lenet", 0, 0, &g));
    CHECK_OK(pare_graph_init_params_as(g, 0, PARE_INIT_HE_UNIFORM));
    pare_train_config c;
    pare_train_config_init(&c);
    c.epochs = 1;
    c.batch = 4;
    c.optimizer = PARE_OPT_ADAMW;
    c.lr = 0.002f;
    c.beta1 = 0.8f;
    c.beta2 = 0.95f;
    c.weight_decay = 0;
    c.warmup_steps = 200;
    c.threads = 2;
    pare_trainer *t;
    CHECK_OK(pare_trainer_new(g, &c, &t));
    CHECK_OK(pare_trainer_run(t, tr, te));
    pare_epoch_stats st;
    CHECK_OK(pare_trainer_epoch_stats(t, 1, &st));
    printf("  lenet, 5,000 images, 1 epoch: test accuracy %.2f%%\n", 100 * st.test_acc);
    /* One epoch on 5,000 images with He init and this AdamW recipe: 80.5-82.0%
     * over seeds 0-7 (seed 0: 81.2%, the same under PARE_ISA=ref, avx2 and
     * avx512); with PyTorch's default init the best recipe found gave 78.2-80.3%. */
    CHECKF(st.test_acc >= 0.80, "test accuracy %.4f", st.test_acc);
    pare_trainer_free(t);
    pare_graph_free(g);
    pare_dataset_free(tr);
    pare_dataset_free(te);
}
