/* The pare command: dispatch to one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "core/blas.h"


typedef struct sub {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *about;
} sub;

static const sub subs[] = {
    {"train", cmd_train, "train a model from the zoo (or continue a model) on a dataset"},
    {"finetune", cmd_finetune, "fine-tune a model, with the efficient-training options"},
    {"eval", cmd_eval, "evaluate a model on a dataset: loss and accuracy"},
    {"info", cmd_info, "show a model's layers: shapes, parameters, MACs, sparsity"},
    {"prune", cmd_prune, "prune a model to a sparsity scheme, fine-tune it, shrink it"},
    {"share", cmd_share, "share weights: k-means codebooks per layer (Deep k-Means), SmartExchange"},
    {"quantize", cmd_quantize, "quantize a model: int8 post-training, QAT, ADMM down to binary"},
    {"run", cmd_run, "run a compiled model on raw samples or a dataset"},
    {"bench", cmd_bench, "measure a compiled model: latency, throughput, memory, per layer"},
    {"compile", cmd_compile, "show a model's compiled plan, or write it as one standalone C file"},
    {"zoo", cmd_zoo, "list the model zoo, or write one of its models, freshly initialised"},
    {"convert", cmd_convert, "convert a model between ONNX and pare's format (by the extensions)"},
    {"online", cmd_online, "serve a stream of requests and fine-tune on its labels (EdgeOL policy)"},
    {"stream-sim", cmd_stream_sim, "build a drifting stream of requests and labels from a dataset"},
    {"onnx-check", cmd_onnx_check, "run ONNX backend test folders: pass, FAIL or unsupported"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: pare COMMAND [options]    (pare COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        fprintf(f, "  %-10s %s\n", subs[i].name, subs[i].about);
    fprintf(f, "\n  --version  print the version and the CPU features in use\n"
               "  --help     this help\n\nenvironment: PARE_THREADS (default thread count), "
               "PARE_ISA=ref|avx2|avx512 (cap the kernels), PARE_DATA (dataset folder)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        printf("pare %s (kernels: %s, BLAS: %s)\n", pare_version(), pare_isa(), pare_blas_name());
        return 0;
    }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(c, subs[i].name))
            return subs[i].run(argc - 2, argv + 2);
    fprintf(stderr, "pare: unknown command '%s' (see pare --help)\n", c);
    return EXIT_USAGE;
}
