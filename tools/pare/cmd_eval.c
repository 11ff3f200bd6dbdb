/* pare eval: a model's loss and accuracy on a dataset. */
#include <stdio.h>

#include "cli.h"
#include "report/report.h"

int cmd_eval(int argc, char **argv)
{
    const char *data = "fashion-mnist", *img = NULL, *lab = NULL;
    int batch = 500, threads = 0, json = 0, train_split = 0;
    long limit = 0;
    cli_opt opts[] = {
        {"--data", CLI_STRING, &data, "SPEC", "fashion-mnist (default) or a folder of IDX or CIFAR-10 files", NULL, 0, 0, 0},
        {"--images", CLI_STRING, &img, "FILE", "IDX images to evaluate on (with --labels)", NULL, 0, 0, 0},
        {"--labels", CLI_STRING, &lab, "FILE", "IDX labels of --images", NULL, 0, 0, 0},
        {"--train-split", CLI_FLAG, &train_split, NULL, "use the training split instead of the test split", NULL, 0, 0, 0},
        {"--batch", CLI_INT, &batch, "N", "batch size (500)", NULL, 1, 65536, 0},
        {"--threads", CLI_INT, &threads, "N", "threads (PARE_THREADS or all cores)", NULL, 1, 256, 0},
        {"--limit", CLI_LONG, &limit, "N", "evaluate on the first N samples only", NULL, 1, 1e12, 0},
        {"--json", CLI_FLAG, &json, NULL, "print one JSON object", NULL, 0, 0, 0},
    };
    cli_cmd cmd = {"eval", "MODEL.pare [options]",
                   "Evaluates a model on a dataset's test split (normalised as the model was trained).",
                   opts, (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *pos[1];
    int npos;
    int r = cli_parse(&cmd, argc, argv, pos, &npos);
    if (r)
        return r < 0 ? 0 : r;
    if (!img != !lab)
        return cli_error("eval", EXIT_USAGE, "--images and --labels come together");
    pare_graph *g = NULL;
    pare_dataset *ds = NULL;
    pare_status s = pare_graph_load(pos[0], &g);
    if (s == PARE_OK)
        s = cli_load_data(data, img, lab, train_split ? PARE_SPLIT_TRAIN : PARE_SPLIT_TEST, limit, &ds);
    pare_eval_result er;
    if (s == PARE_OK) {
        cli_apply_model_norm(g, ds);
        s = pare_evaluate(g, ds, batch, threads, &er);
    }
    int code = 0;
    if (s != PARE_OK) {
        code = cli_fail("eval", s);
    } else if (json) {
        pare_json *j = pare_json_new(stdout, 0);
        pare_json_begin_object(j);
        pare_json_kv_string(j, "model", pos[0]);
        pare_json_kv_int(j, "samples", er.samples);
        pare_json_kv_double(j, "loss", er.loss);
        pare_json_kv_double(j, "accuracy", er.accuracy);
        pare_json_end_object(j);
        pare_json_free(j);
    } else {
        printf("%s: %ld samples, loss %.4f, accuracy %.2f%%\n", pos[0], er.samples, er.loss,
               100 * er.accuracy);
    }
    pare_dataset_free(ds);
    pare_graph_free(g);
    return code;
}
