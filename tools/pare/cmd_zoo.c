/* pare zoo: writes a model of the zoo, initialised (PyTorch's default init)
 * but untrained, or lists the zoo. */
#include <stdio.h>

#include "cli.h"

int cmd_zoo(int argc, char **argv)
{
    const char *out = NULL;
    int classes = 0;
    uint64_t seed = 0;
    cli_opt opts[] = {
        {"--out", CLI_STRING, &out, "FILE", "where to write the model", NULL, 0, 0, 0},
        {"--classes", CLI_INT, &classes, "N", "output classes (10; 1000 for the 224x224 models)", NULL, 1, 1 << 20, 0},
        {"--seed", CLI_U64, &seed, "N", "seed of the initial weights (0)", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"zoo", "[NAME --out FILE]",
                   "Writes a zoo model with freshly initialised weights (for benchmarks, or to train with\n"
                   "pare train --from); without a name, lists the zoo.",
                   opts, (int)(sizeof opts / sizeof opts[0]), 0, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (npos == 0) {
        for (const char *const *n = pare_zoo_names(); *n; n++)
            puts(*n);
        return 0;
    }
    if (!out)
        return cli_error("zoo", EXIT_USAGE, "--out FILE is required");
    pare_graph *g;
    pare_status s = pare_zoo_build(pos[0], classes, seed, &g);
    if (s == PARE_OK) {
        s = pare_graph_save(g, out);
        pare_graph_free(g);
    }
    return s == PARE_OK ? 0 : cli_fail("zoo", s);
}
