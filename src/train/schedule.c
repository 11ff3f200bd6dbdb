/* Learning-rate schedules as closed forms of the step number, so a resumed run
 * recomputes exactly the rates the uninterrupted run used. */
#include <math.h>

#include "train/train.h"

double pare_lr_at(const pare_train_config *c, long step, long total, long steps_per_epoch)
{
    double lr = c->lr;
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return lr * (double)(step + 1) / (double)c->warmup_steps;
    switch (c->schedule) {
    case PARE_SCHED_CONSTANT:
        return lr;
    case PARE_SCHED_STEP: {
        long epoch = steps_per_epoch > 0 ? step / steps_per_epoch : 0;
        int every = c->step_epochs > 0 ? c->step_epochs : 1;
        return lr * pow((double)c->step_gamma, (double)(epoch / every));
    }
    case PARE_SCHED_COSINE: {
        long t = step - (c->warmup_steps > 0 ? c->warmup_steps : 0);
        long span = total - (c->warmup_steps > 0 ? c->warmup_steps : 0);
        if (span <= 0)
            return lr;
        /* PyTorch's CosineAnnealingLR with eta_min 0, in closed form. */
        return lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)t / (double)span));
    }
    }
    return lr;
}
