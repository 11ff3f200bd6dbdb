/* Option parsing and helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "data/data.h"
#include "graph/graph.h"
#include "report/report.h"

int cli_error(const char *cmd, int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "pare %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_fail(const char *cmd, pare_status s)
{
    if (s == PARE_ECANCELLED)
        return cli_error(cmd, EXIT_INTERRUPTED, "%s", pare_last_error());
    return cli_error(cmd, 1, "%s", pare_last_error());
}

const cli_opt *cli_find(const cli_cmd *cmd, const char *name)
{
    for (int i = 0; i < cmd->nopts; i++)
        if (!strcmp(cmd->opts[i].name, name))
            return &cmd->opts[i];
    return NULL;
}

void cli_usage(const cli_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: pare %s %s\n\n%s\n\noptions:\n", cmd->name, cmd->usage, cmd->about);
    for (int i = 0; i < cmd->nopts; i++) {
        const cli_opt *o = &cmd->opts[i];
        char left[64];
        if (o->kind == CLI_FLAG)
            snprintf(left, sizeof left, "%s", o->name);
        else
            snprintf(left, sizeof left, "%s %s", o->name, o->arg ? o->arg : "X");
        fprintf(f, "  %-24s %s", left, o->help);
        if (o->kind == CLI_CHOICE) {
            fputs(" (", f);
            for (int k = 0; o->choices[k]; k++)
                fprintf(f, "%s%s", k ? ", " : "", o->choices[k]);
            fputs(")", f);
        }
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "--help", "show this help");
}

static int parse_value(const char *cmdname, cli_opt *o, const char *v)
{
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case CLI_INT:
    case CLI_LONG:
    case CLI_U64: {
        if (*v == 0)
            break;
        if (o->kind == CLI_U64) {
            if (*v == '-')
                break;
            unsigned long long x = strtoull(v, &end, 10);
            if (*end || errno)
                break;
            *(uint64_t *)o->dst = (uint64_t)x;
            return 0;
        }
        long long x = strtoll(v, &end, 10);
        if (*end || errno)
            break;
        if (o->lo < o->hi && (x < o->lo || x > o->hi))
            return cli_error(cmdname, EXIT_USAGE, "%s %s is out of range: it must be between %.0f and %.0f",
                             o->name, v, o->lo, o->hi);
        if (o->kind == CLI_INT) {
            if (x < -2147483647LL || x > 2147483647LL)
                break;
            *(int *)o->dst = (int)x;
        } else {
            *(long *)o->dst = (long)x;
        }
        return 0;
    }
    case CLI_FLOAT: {
        if (*v == 0)
            break;
        double x = strtod(v, &end);
        if (*end || !isfinite(x))
            break;
        if (o->lo < o->hi && (x < o->lo || x > o->hi))
            return cli_error(cmdname, EXIT_USAGE, "%s %s is out of range: it must be between %g and %g",
                             o->name, v, o->lo, o->hi);
        *(float *)o->dst = (float)x;
        return 0;
    }
    case CLI_STRING:
        if (*v == 0)
            return cli_error(cmdname, EXIT_USAGE, "%s needs a non-empty value", o->name);
        *(const char **)o->dst = v;
        return 0;
    case CLI_CHOICE:
        for (int k = 0; o->choices[k]; k++)
            if (!strcmp(o->choices[k], v)) {
                *(int *)o->dst = k;
                return 0;
            }
        {
            char list[256] = "";
            for (int k = 0; o->choices[k]; k++) {
                strncat(list, k ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, o->choices[k], sizeof list - strlen(list) - 1);
            }
            return cli_error(cmdname, EXIT_USAGE, "%s '%s' is not one of: %s", o->name, v, list);
        }
    }
    return cli_error(cmdname, EXIT_USAGE, "%s '%s' is not a valid %s", o->name, v,
                     o->kind == CLI_FLOAT ? "number" : "whole number");
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos)
{
    *npos = 0;
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            cli_usage(cmd, stdout);
            return -1;
        }
        if (!only_pos && a[0] == '-' && a[1] != 0) {
            char name[64];
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            if (len >= sizeof name)
                return cli_error(cmd->name, EXIT_USAGE, "unknown option %.40s (see pare %s --help)", a, cmd->name);
            memcpy(name, a, len);
            name[len] = 0;
            cli_opt *o = NULL;
            for (int k = 0; k < cmd->nopts; k++)
                if (!strcmp(cmd->opts[k].name, name))
                    o = &cmd->opts[k];
            if (!o)
                return cli_error(cmd->name, EXIT_USAGE, "unknown option %s (see pare %s --help)", name, cmd->name);
            if (o->set && o->kind != CLI_FLAG)
                return cli_error(cmd->name, EXIT_USAGE, "%s is given twice", name);
            o->set = 1;
            if (o->kind == CLI_FLAG) {
                if (eq)
                    return cli_error(cmd->name, EXIT_USAGE, "%s takes no value", name);
                *(int *)o->dst = 1;
                continue;
            }
            const char *v = eq ? eq + 1 : NULL;
            if (!v) {
                if (i + 1 >= argc)
                    return cli_error(cmd->name, EXIT_USAGE, "%s needs a value (%s)", name, o->arg ? o->arg : "X");
                v = argv[++i];
            }
            int r = parse_value(cmd->name, o, v);
            if (r)
                return r;
            continue;
        }
        if (*npos >= cmd->max_pos)
            return cli_error(cmd->name, EXIT_USAGE, "unexpected argument '%s' (see pare %s --help)", a, cmd->name);
        pos[(*npos)++] = a;
    }
    if (*npos < cmd->min_pos)
        return cli_error(cmd->name, EXIT_USAGE, "missing argument: usage: pare %s %s", cmd->name, cmd->usage);
    return 0;
}

pare_status cli_load_data(const char *spec, const char *images, const char *labels, pare_split split,
                          long limit, pare_dataset **out)
{
    pare_status s;
    *out = NULL;
    if (images) {
        if (!labels)
            return pare_fail(PARE_EINVAL, "images were given without their labels");
        s = pare_dataset_load_idx(images, labels, out);
    } else {
        s = pare_dataset_open(spec, split, out);
    }
    if (s != PARE_OK)
        return s;
    if (limit > 0 && limit < pare_dataset_size(*out)) {
        s = pare_dataset_limit(*out, limit);
        if (s != PARE_OK) {
            pare_dataset_free(*out);
            *out = NULL;
        }
    }
    return s;
}

void cli_apply_model_norm(const pare_graph *g, pare_dataset *ds)
{
    float mean[PARE_DATA_MAX_CH], std[PARE_DATA_MAX_CH];
    int n = pare_graph_norm_get(g, mean, std, PARE_DATA_MAX_CH);
    if (n > 0)
        pare_dataset_set_normalization(ds, n, mean, std);
}

pare_status cli_load_train_test(const char *cmd, const pare_graph *g, const char *spec, const char *tr_img,
                                const char *tr_lab, const char *te_img, const char *te_lab, long limit,
                                long test_limit, int need_train, int data_given, int quiet, pare_dataset **train,
                                pare_dataset **test)
{
    *train = *test = NULL;
    pare_status s = cli_load_data(spec, te_img, te_lab, PARE_SPLIT_TEST, test_limit, test);
    if (s != PARE_OK) {
        /* Without training, accuracy is a bonus: skip it when the default
         * data is absent, but not when the user asked for data. */
        if (need_train || data_given)
            return s;
        *test = NULL;
        if (!quiet)
            fprintf(stderr, "pare %s: no test data (%s); accuracy is not reported\n", cmd, pare_last_error());
    }
    if (need_train && (s = cli_load_data(spec, tr_img, tr_lab, PARE_SPLIT_TRAIN, limit, train)) != PARE_OK)
        return s;
    if (*train)
        cli_apply_model_norm(g, *train);
    if (*test)
        cli_apply_model_norm(g, *test);
    return PARE_OK;
}

int cli_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

long long cli_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

void cli_pct(double v, char *buf, size_t n)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, "%.2f%%", 100 * v);
}

void cli_progress_event(const pare_train_event *ev, void *user)
{
    cli_progress *u = user;
    if (u->quiet)
        return;
    char extra[128], rate[32];
    if (ev->kind == PARE_EV_STEP) {
        snprintf(u->label, sizeof u->label, "%s %d/%d", u->phase ? u->phase : "train", ev->epoch, ev->epochs);
        pare_format_count(ev->images_per_s, rate, sizeof rate);
        snprintf(extra, sizeof extra, "%s img/s  loss %.4f", rate, ev->loss);
        pare_progress_update(u->bar, u->label, ev->step, ev->steps_per_epoch, extra);
    } else if (ev->kind == PARE_EV_EPOCH) {
        char acc[40] = "";
        if (ev->stats->test_acc >= 0)
            snprintf(acc, sizeof acc, "  test acc %.2f%%", 100 * ev->stats->test_acc);
        pare_progress_done(u->bar);
        pare_progress_line(u->bar, "%s%sepoch %d/%d  loss %.4f%s  %.1f s", u->phase ? u->phase : "",
                           u->phase ? " " : "", ev->stats->epoch, ev->epochs, ev->stats->train_loss, acc,
                           ev->stats->seconds);
    }
}

pare_status cli_float_model(const char *path, pare_graph **g, int dequantize, const char *doing, const char *other)
{
    int nt, nf;
    if (!pare_graph_quantized(*g, &nt, &nf))
        return PARE_OK;
    if (!dequantize)
        return pare_fail(PARE_EINVAL,
                         "%s is a quantized model (%d quantized tensors, %d fakequant nodes): %s it in float would "
                         "move its weights off their grid; give --dequantize to treat it as a float model%s",
                         path, nt, nf, doing, other ? other : "");
    pare_graph *ng = NULL;
    pare_status s = pare_graph_dequantize(*g, &ng);
    if (s != PARE_OK)
        return s;
    pare_graph_free(*g);
    *g = ng;
    return PARE_OK;
}
