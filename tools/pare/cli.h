/* Shared parts of the pare command: option tables, parsing with one clear
 * line per mistake, data loading, exit codes. */
#ifndef PARE_CLI_H
#define PARE_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "pare.h"

enum { EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

typedef enum cli_kind { CLI_FLAG, CLI_INT, CLI_LONG, CLI_U64, CLI_FLOAT, CLI_STRING, CLI_CHOICE } cli_kind;

typedef struct cli_opt {
    const char *name;           /* "--lr" */
    cli_kind kind;
    void *dst;                  /* int*, long*, uint64_t*, float*, const char**; CHOICE: int* index */
    const char *arg;            /* placeholder in help: "N", "FILE" */
    const char *help;
    const char *const *choices; /* CHOICE: NULL-terminated */
    double lo, hi;              /* numeric bounds (inclusive) when lo < hi */
    int set;                    /* filled by the parser */
} cli_opt;

typedef struct cli_cmd {
    const char *name;
    const char *usage;          /* "MODEL.pare [options]" */
    const char *about;          /* one paragraph */
    cli_opt *opts;
    int nopts;
    int min_pos, max_pos;       /* positional arguments */
} cli_cmd;

/* Parses argv (after the command name). Returns 0 and fills positionals, or
 * prints one line to stderr and returns EXIT_USAGE; --help prints the usage
 * and returns -1 (the caller exits 0). */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos);
void cli_usage(const cli_cmd *cmd, FILE *f);
const cli_opt *cli_find(const cli_cmd *cmd, const char *name);

/* Prints "pare CMD: <message>" for a failed status and returns 1. */
int cli_fail(const char *cmd, pare_status s);
/* Prints "pare CMD: <formatted>" and returns the code. */
int cli_error(const char *cmd, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Loads a split of a dataset: spec (fashion-mnist or a folder), or explicit
 * IDX paths when images is set; limit > 0 keeps the first limit samples. */
pare_status cli_load_data(const char *spec, const char *images, const char *labels, pare_split split,
                          long limit, pare_dataset **out);

/* Applies the normalisation a model was trained with, if it records one. */
void cli_apply_model_norm(const pare_graph *g, pare_dataset *ds);

/* The data of a command that may train g (prune, share): the test split, and
 * the training split when need_train, both normalised as g was trained. The
 * test split is optional when nothing trains and the user gave no data
 * (data_given 0): then *test is NULL and, unless quiet, a line says accuracy
 * is not reported. */
pare_status cli_load_train_test(const char *cmd, const pare_graph *g, const char *spec, const char *tr_img,
                                const char *tr_lab, const char *te_img, const char *te_lab, long limit,
                                long test_limit, int need_train, int data_given, int quiet, pare_dataset **train,
                                pare_dataset **test);

/* Whether a and b name the same existing file (a hard link or another path to it). */
int cli_same_file(const char *a, const char *b);
/* A command that trains *g in float: a quantized model is refused (its weights
 * would leave their grid) unless `dequantize`, which makes *g a float model;
 * `doing` names the training ("pruning"), `other` may add another way out. */
pare_status cli_float_model(const char *path, pare_graph **g, int dequantize, const char *doing, const char *other);
/* A file's size in bytes, -1 when it cannot be read. */
long long cli_file_size(const char *path);
/* v as a percentage with two decimals, "-" when v < 0 (not measured). */
void cli_pct(double v, char *buf, size_t n);

/* The training progress of a command that trains inside (prune, quantize,
 * share): pass cli_progress_event as the callback and the struct as its user
 * pointer. A step updates the bar labelled "<phase> <epoch>/<epochs>" (phase
 * NULL: "train"); an epoch prints "[<phase> ]epoch e/n  loss L[  test acc A%]  S s". */
typedef struct cli_progress {
    struct pare_progress *bar;
    int quiet;
    const char *phase;
    char label[96];
} cli_progress;
void cli_progress_event(const pare_train_event *ev, void *user);

int cmd_train(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_share(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_zoo(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_onnx_check(int argc, char **argv);
int cmd_online(int argc, char **argv);
int cmd_stream_sim(int argc, char **argv);

#endif
