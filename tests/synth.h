/* Small synthetic datasets written as IDX files, so tests that train do not
 * depend on a download: each class is a bright bar at its own place and angle,
 * plus noise, which LeNet learns in a few hundred steps. */
#ifndef PARE_TEST_SYNTH_H
#define PARE_TEST_SYNTH_H

/* Writes <dir>/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-... with
 * n_train and n_test samples of 28x28, 10 classes. Returns 0 on success. */
int synth_write_idx(const char *dir, int n_train, int n_test, unsigned seed);

#endif
