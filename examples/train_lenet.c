/* Trains LeNet on Fashion-MNIST through the public API alone, then saves it.
 * cc train_lenet.c $(pkg-config --cflags --libs pare) ; ./a.out [LIMIT] [OUT] */
#include <pare.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long limit = argc > 1 ? atol(argv[1]) : 0;
    const char *out = argc > 2 ? argv[2] : "lenet.pare";
    pare_graph *g = pare_graph_new("lenet");
    int x = pare_graph_input(g, 1, 28, 28);
    x = pare_graph_maxpool(g, pare_graph_relu(g, pare_graph_conv2d(g, x, 6, 5, 1, 2, "conv1"), "relu1"), 2, 2, 0, "pool1");
    x = pare_graph_maxpool(g, pare_graph_relu(g, pare_graph_conv2d(g, x, 16, 5, 1, 0, "conv2"), "relu2"), 2, 2, 0, "pool2");
    x = pare_graph_relu(g, pare_graph_linear(g, pare_graph_flatten(g, x, "flatten"), 120, 1, "fc1"), "relu3");
    x = pare_graph_relu(g, pare_graph_linear(g, x, 84, 1, "fc2"), "relu4");
    pare_graph_linear(g, x, 10, 1, "fc3");
    pare_dataset *train = NULL, *test = NULL;
    pare_trainer *t = NULL;
    pare_status s = pare_graph_status(g);
    if (s == PARE_OK) s = pare_dataset_open("fashion-mnist", PARE_SPLIT_TRAIN, &train);
    if (s == PARE_OK) s = pare_dataset_open("fashion-mnist", PARE_SPLIT_TEST, &test);
    if (s == PARE_OK && limit > 0) s = pare_dataset_limit(train, limit);
    pare_train_config c;
    pare_train_config_init(&c);  /* SGD, momentum 0.9, cosine, weight decay 5e-4 */
    c.epochs = 1;
    c.batch = 16;
    c.nesterov = 1;
    if (s == PARE_OK) s = pare_trainer_new(g, &c, &t);
    if (s == PARE_OK) s = pare_trainer_run(t, train, test);
    pare_epoch_stats st;
    if (s == PARE_OK) s = pare_trainer_epoch_stats(t, 1, &st);
    if (s == PARE_OK) s = pare_graph_save(g, out);
    if (s == PARE_OK)
        printf("test accuracy %.2f%%, saved %s\n", 100 * st.test_acc, out);
    else
        fprintf(stderr, "train_lenet: %s\n", pare_last_error());
    pare_trainer_free(t);
    pare_dataset_free(train);
    pare_dataset_free(test);
    pare_graph_free(g);
    return s == PARE_OK ? 0 : 1;
}
