/* Internal parts of online fine-tuning shared with the command and the tests. */
#ifndef PARE_TRAIN_ONLINE_H
#define PARE_TRAIN_ONLINE_H

#include "pare.h"

/* The sample shape and class count are within the format's limits; one
 * sentence (PARE_EFORMAT) naming `what` if not. */
pare_status pare_stream_info_check(const pare_stream_info *in, const char *what);

#endif
