/* The pare command end to end: happy paths (train, info, eval, --json,
 * --plot, --help, --version) and every kind of bad input, which must end with
 * exactly one line on stderr and a non-zero status, and never a crash. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/fsio.h"
#include "synth.h"
#include "test.h"

typedef struct result {
    int code;          /* exit status, or 128 + signal */
    char out[65536];
    char err[8192];
} result;

static result res;

static void slurp(const char *path, char *buf, size_t n)
{
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = 0;
    fclose(f);
}

/* Runs `pare <args>` through the shell; fills res. Returns 0 when PARE_BIN is unset. */
static int run(const char *args)
{
    const char *bin = getenv("PARE_BIN");
    if (!bin)
        return 0;
    char out[1100], err[1100], cmd[8192];
    snprintf(out, sizeof out, "%s", pare_test_path("stdout.txt"));
    snprintf(err, sizeof err, "%s", pare_test_path("stderr.txt"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>'%s'", pare_test_dir(), bin, args, out, err);
    int st = system(cmd);
    res.code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp(out, res.out, sizeof res.out);
    slurp(err, res.err, sizeof res.err);
    return 1;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A failure: the status, one line on stderr starting with "pare", holding want. */
static void expect_error(const char *args, int code, const char *want)
{
    if (!run(args))
        return;
    CHECKF(res.code == code, "pare %s: exit %d, wanted %d (stderr: %s)", args, res.code, code, res.err);
    CHECKF(lines(res.err) == 1, "pare %s: %d lines on stderr: %s", args, lines(res.err), res.err);
    CHECKF(!strncmp(res.err, "pare", 4), "pare %s: stderr does not start with 'pare': %s", args, res.err);
    CHECKF(strstr(res.err, want) != NULL, "pare %s: stderr lacks '%s': %s", args, want, res.err);
}

static void write_file(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(pare_test_path(name), "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

PARE_TEST(cli_help_and_version)
{
    if (!run("--help")) {
        printf("  skipped: PARE_BIN is not set (run through make check)\n");
        return;
    }
    CHECK(res.code == 0 && strstr(res.out, "usage: pare") && strstr(res.out, "train"));
    run("--version");
    CHECK(res.code == 0 && strstr(res.out, "pare 0.") && strstr(res.out, "kernels:"));
    run("train --help");
    CHECK(res.code == 0 && strstr(res.out, "--resume") && strstr(res.out, "--checkpoint-every"));
    run("info --help");
    CHECK(res.code == 0 && strstr(res.out, "usage: pare info"));
    run("zoo");
    CHECK(res.code == 0 && strstr(res.out, "resnet18") && strstr(res.out, "mobilenetv2-224"));
    run("zoo resnet20 --out z.pare --seed 3");
    CHECK(res.code == 0 && pare_file_exists(pare_test_path("z.pare")));
    expect_error("zoo resnet99 --out z.pare", 1, "resnet99");
    expect_error("zoo resnet20", 2, "--out");
    run("eval -h");
    CHECK(res.code == 0 && strstr(res.out, "usage: pare eval"));
    run("");
    CHECK(res.code == 2 && strstr(res.err, "usage"));
}

PARE_TEST(cli_bad_flags)
{
    if (!getenv("PARE_BIN"))
        return;
    expect_error("frobnicate", 2, "unknown command 'frobnicate'");
    expect_error("train --model lenet --out m.pare --lrr 0.1", 2, "unknown option --lrr");
    expect_error("train --model lenet", 2, "--out FILE is required");
    expect_error("train --out m.pare", 2, "either --model");
    expect_error("train --model lenet --out m.pare --epochs abc", 2, "'abc' is not a valid whole number");
    expect_error("train --model lenet --out m.pare --epochs 0", 2, "out of range");
    expect_error("train --model lenet --out m.pare --lr nan", 2, "not a valid number");
    expect_error("train --model lenet --out m.pare --lr 1e-20", 2, "out of range");
    expect_error("train --model lenet --out m.pare --optimizer adam", 2, "'adam' is not one of: sgd, adamw");
    expect_error("train --model lenet --out m.pare --init kaiming", 2, "'kaiming' is not one of: default, he-normal");
    expect_error("train --from m.pare --out n.pare --init he-normal", 2, "--init initialises a zoo model");
    expect_error("train --model lenet --out m.pare --epochs", 2, "--epochs needs a value");
    expect_error("train --model lenet --out m.pare --epochs 1 --epochs 2", 2, "given twice");
    expect_error("train --model lenet --out m.pare --nesterov=1", 2, "takes no value");
    expect_error("train --model lenet --out m.pare extra", 2, "unexpected argument 'extra'");
    expect_error("train --model lenet --out m.pare --train-images x", 2, "come in pairs");
    expect_error("info", 2, "missing argument");
    expect_error("info a.pare b.pare", 2, "unexpected argument");
    expect_error("eval m.pare --batch -3", 2, "out of range");
}

PARE_TEST(cli_bad_files)
{
    if (!getenv("PARE_BIN"))
        return;
    mkdir(pare_test_path("synth"), 0755);
    CHECK(synth_write_idx(pare_test_path("synth"), 300, 100, 4) == 0);
    expect_error("info missing.pare", 1, "missing.pare");
    write_file("garbage.pare", "hello, this is not a model at all, not even close to one\n", 57);
    expect_error("info garbage.pare", 1, "garbage.pare");
    expect_error("eval garbage.pare --data synth", 1, "garbage.pare");
    expect_error("train --model nosuch --out m.pare --data synth", 1, "no model named 'nosuch'");
    expect_error("train --model lenet --out m.pare --data /nonexistent/folder", 1, "/nonexistent/folder");
    /* a CIFAR-shaped model on 28x28 data */
    expect_error("train --model resnet20 --out m.pare --data synth --epochs 1", 1, "3x32x32");
    /* a truncated IDX file */
    char p[1100];
    uint8_t *buf;
    size_t n;
    snprintf(p, sizeof p, "%s", pare_test_path("synth/train-images-idx3-ubyte"));
    CHECK_OK(pare_read_file(p, 1 << 26, &buf, &n));
    mkdir(pare_test_path("cut"), 0755);
    write_file("cut/train-images-idx3-ubyte", buf, n / 2);
    free(buf);
    snprintf(p, sizeof p, "%s", pare_test_path("synth/train-labels-idx1-ubyte"));
    CHECK_OK(pare_read_file(p, 1 << 26, &buf, &n));
    write_file("cut/train-labels-idx1-ubyte", buf, n);
    free(buf);
    expect_error("train --model lenet --out m.pare --data cut --no-test", 1, "truncated");
    /* the output folder does not exist: the run fails at the end, clearly */
    expect_error("train --model lenet --out /nonexistent/m.pare --data synth --epochs 1 --limit 64 --quiet --checkpoint /nonexistent/c", 1, "/nonexistent/");
}

PARE_TEST(cli_train_info_eval)
{
    if (!getenv("PARE_BIN"))
        return;
    mkdir(pare_test_path("synth"), 0755);
    CHECK(synth_write_idx(pare_test_path("synth"), 600, 200, 8) == 0);
    run("train --model lenet --data synth --epochs 3 --batch 8 --out m.pare --json --plot curves.svg --threads 2");
    CHECKF(res.code == 0, "train failed: %s", res.err);
    /* JSON lines: three epochs and a summary */
    CHECK(lines(res.out) == 4);
    CHECK(strstr(res.out, "{\"event\":\"epoch\",\"epoch\":1,") != NULL);
    CHECK(strstr(res.out, "\"event\":\"done\"") != NULL);
    char *done = strstr(res.out, "\"event\":\"done\"");
    char *acc = done ? strstr(done, "\"test_acc\":") : NULL;
    CHECK(acc && atof(acc + 11) > 0.9);
    uint8_t *svg;
    size_t n;
    CHECK_OK(pare_read_file(pare_test_path("curves.svg"), 1 << 24, &svg, &n));
    if (svg) {
        CHECK(strstr((char *)svg, "<svg") && strstr((char *)svg, "</svg>") && strstr((char *)svg, "Accuracy"));
        free(svg);
    }
    CHECK(pare_file_exists(pare_test_path("m.pare.ckpt")));
    run("info m.pare");
    CHECK(res.code == 0);
    CHECK(strstr(res.out, "conv1") && strstr(res.out, "fc3") && strstr(res.out, "61,706"));
    CHECK(strstr(res.out, "6x28x28") && strstr(res.out, "total"));
    run("info m.pare --json");
    CHECK(res.code == 0 && strstr(res.out, "\"params\": 61706"));
    run("eval m.pare --data synth");
    CHECK(res.code == 0 && strstr(res.out, "200 samples") && strstr(res.out, "accuracy"));
    run("eval m.pare --data synth --json --limit 50");
    CHECK(res.code == 0 && strstr(res.out, "\"samples\":50"));
    /* continue training from the file */
    run("train --from m.pare --data synth --epochs 1 --out m2.pare --quiet");
    CHECKF(res.code == 0, "train --from failed: %s", res.err);
    /* the checkpoint of a finished run: --resume has nothing left and writes the same model */
    run("train --model lenet --data synth --epochs 3 --batch 8 --out m.pare --threads 2 --resume --quiet");
    CHECKF(res.code == 0, "resume of a finished run failed: %s", res.err);
}
