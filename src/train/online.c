/* Online fine-tuning on a stream (EdgeOL): the stream file format, and a learner
 * that serves a prediction for every record while it decides when to fine-tune
 * (inter-tuning) and which layers to freeze within rounds (intra-tuning). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsio.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/data.h"
#include "graph/exec.h"
#include "graph/graph.h"
#include "ops/loss.h"
#include "train/efficient.h"
#include "train/online.h"
#include "train/train.h"

/* ---- the stream format ---------------------------------------------------- */

static const char STREAM_MAGIC[8] = {'P', 'A', 'R', 'E', 'S', 'T', 'R', 'M'};
#define STREAM_VERSION 1
#define HEADER_BYTES 32
#define REC_INFER 'I'
#define REC_LABELLED 'L'
#define REC_SEGMENT 'S'
#define NO_LABEL 0xFFFFu
#define MAX_SIDE 4096
#define MAX_VALUES (16L << 20)
#ifndef BOOST
#define BOOST 3
#endif

struct pare_stream {
    FILE *f;
    int own;              /* fclose at the end (not stdin) */
    char *name;           /* for messages */
    pare_stream_info info;
    size_t npix;
    uint8_t *pix;
    long count;
    int failed;           /* a bad record was met: later calls repeat the failure */
};

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

pare_status pare_stream_info_check(const pare_stream_info *in, const char *what)
{
    if (in->channels < 1 || in->channels > MAX_SIDE || in->height < 1 || in->height > MAX_SIDE ||
        in->width < 1 || in->width > MAX_SIDE)
        return pare_fail(PARE_EFORMAT, "%s: the sample shape %dx%dx%d is outside 1..%d per side", what,
                         in->channels, in->height, in->width, MAX_SIDE);
    if ((long)in->channels * in->height * in->width > MAX_VALUES)
        return pare_fail(PARE_EFORMAT, "%s: samples of %dx%dx%d values are larger than %ld values", what,
                         in->channels, in->height, in->width, MAX_VALUES);
    if (in->classes < 1 || in->classes > 65535)
        return pare_fail(PARE_EFORMAT, "%s: the class count %d is outside 1..65535", what, in->classes);
    return PARE_OK;
}

pare_status pare_stream_open(const char *path, pare_stream **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "pare_stream_open needs somewhere to put the stream");
    *out = NULL;
    if (!path || !*path)
        return pare_fail(PARE_EINVAL, "a stream needs a file name (or - for standard input)");
    pare_stream *s = calloc(1, sizeof *s);
    if (!s)
        return pare_fail(PARE_ENOMEM, "out of memory opening a stream");
    pare_status st;
    int is_stdin = !strcmp(path, "-");
    s->name = dup_str(is_stdin ? "standard input" : path);
    if (!s->name) {
        st = pare_fail(PARE_ENOMEM, "out of memory opening a stream");
        goto fail;
    }
    if (is_stdin) {
        s->f = stdin;
    } else {
        s->f = fopen(path, "rb");
        if (!s->f) {
            st = pare_fail(PARE_EIO, "cannot open the stream %s", path);
            goto fail;
        }
        s->own = 1;
    }
    uint8_t h[HEADER_BYTES];
    size_t got = fread(h, 1, sizeof h, s->f);
    if (got < 8 || memcmp(h, STREAM_MAGIC, 8) != 0) {
        st = pare_fail(PARE_EFORMAT, "%s is not a pare stream (it does not start with PARESTRM)", s->name);
        goto fail;
    }
    if (got < sizeof h) {
        st = pare_fail(PARE_EFORMAT, "%s is truncated inside its %d-byte header", s->name, HEADER_BYTES);
        goto fail;
    }
    uint32_t ver = pare_le32(h + 8);
    if (ver != STREAM_VERSION) {
        st = pare_fail(PARE_EFORMAT, "%s has stream version %u; this pare reads version %d", s->name,
                       (unsigned)ver, STREAM_VERSION);
        goto fail;
    }
    uint32_t v[4];
    for (int i = 0; i < 4; i++) {
        v[i] = pare_le32(h + 12 + 4 * i);
        if (v[i] > 1u << 20)
            v[i] = 1u << 20;   /* keeps the int conversion defined; the check below refuses it */
    }
    s->info = (pare_stream_info){(int)v[0], (int)v[1], (int)v[2], (int)v[3]};
    st = pare_stream_info_check(&s->info, s->name);
    if (st != PARE_OK)
        goto fail;
    if (pare_le32(h + 28) != 0) {
        st = pare_fail(PARE_EFORMAT, "%s has header flags 0x%x; this pare knows none", s->name,
                       (unsigned)pare_le32(h + 28));
        goto fail;
    }
    s->npix = (size_t)s->info.channels * (size_t)s->info.height * (size_t)s->info.width;
    s->pix = malloc(s->npix);
    if (!s->pix) {
        st = pare_fail(PARE_ENOMEM, "out of memory for the samples of %s", s->name);
        goto fail;
    }
    *out = s;
    return PARE_OK;
fail:
    pare_stream_close(s);
    return st;
}

void pare_stream_get_info(const pare_stream *s, pare_stream_info *out) { *out = s->info; }
long pare_stream_count(const pare_stream *s) { return s ? s->count : 0; }

void pare_stream_close(pare_stream *s)
{
    if (!s)
        return;
    if (s->f && s->own)
        fclose(s->f);
    free(s->pix);
    free(s->name);
    free(s);
}

/* size: the record's bytes, kind byte included; got: how many were there. */
static pare_status truncated(pare_stream *s, long rec, const char *kind, size_t size, size_t got)
{
    s->failed = 1;
    return pare_fail(PARE_EFORMAT, "%s is truncated: record %ld (%s) ends after %zu of its %zu bytes", s->name,
                     rec, kind, got, size);
}

pare_status pare_stream_next(pare_stream *s, pare_record *rec, int *got)
{
    if (!s || !rec || !got)
        return pare_fail(PARE_EINVAL, "pare_stream_next needs a stream, a record and a flag");
    *got = 0;
    if (s->failed)
        return pare_fail(PARE_EFORMAT, "%s: reading past a bad record", s->name);
    long no = s->count + 1;   /* records are numbered from 1 in messages */
    int k = fgetc(s->f);
    if (k == EOF) {
        if (ferror(s->f)) {
            s->failed = 1;
            return pare_fail(PARE_EIO, "reading %s failed before record %ld", s->name, no);
        }
        return PARE_OK;
    }
    uint8_t b[4];
    size_t n;
    switch (k) {
    case REC_SEGMENT:
        n = fread(b, 1, 4, s->f);
        if (n < 4)
            return truncated(s, no, "a segment marker", 5, 1 + n);
        *rec = (pare_record){PARE_REC_SEGMENT, (int)(pare_le32(b) & 0x7fffffff), NULL};
        break;
    case REC_INFER:
    case REC_LABELLED: {
        const char *what = k == REC_INFER ? "an inference request" : "a labelled sample";
        n = fread(b, 1, 2, s->f);
        if (n < 2)
            return truncated(s, no, what, 3 + s->npix, 1 + n);
        unsigned lab = (unsigned)b[0] | (unsigned)b[1] << 8;
        if (k == REC_LABELLED && lab >= (unsigned)s->info.classes) {
            s->failed = 1;
            return pare_fail(PARE_EFORMAT, "%s: record %ld (a labelled sample) has label %u, outside 0..%d",
                             s->name, no, lab, s->info.classes - 1);
        }
        if (k == REC_INFER && lab != NO_LABEL && lab >= (unsigned)s->info.classes) {
            s->failed = 1;
            return pare_fail(PARE_EFORMAT,
                             "%s: record %ld (an inference request) has true class %u, outside 0..%d and not 65535",
                             s->name, no, lab, s->info.classes - 1);
        }
        n = fread(s->pix, 1, s->npix, s->f);
        if (n < s->npix)
            return truncated(s, no, what, 3 + s->npix, 3 + n);
        *rec = (pare_record){k == REC_INFER ? PARE_REC_INFER : PARE_REC_LABELLED,
                             lab == NO_LABEL ? -1 : (int)lab, s->pix};
        break;
    }
    default:
        s->failed = 1;
        return pare_fail(PARE_EFORMAT, "%s: record %ld has unknown kind byte 0x%02x (I, L or S expected)",
                         s->name, no, (unsigned)k);
    }
    s->count++;
    *got = 1;
    return PARE_OK;
}

struct pare_stream_writer {
    char *path;
    pare_stream_info info;
    size_t npix;
    pare_wbuf b;
};

pare_status pare_stream_writer_new(const char *path, const pare_stream_info *info, pare_stream_writer **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "pare_stream_writer_new needs somewhere to put the writer");
    *out = NULL;
    if (!path || !*path || !info)
        return pare_fail(PARE_EINVAL, "a stream writer needs a path (or -) and the sample shape");
    pare_status s = pare_stream_info_check(info, "the stream to write");
    if (s != PARE_OK)
        return pare_fail(PARE_EINVAL, "%s", pare_last_error());
    pare_stream_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = dup_str(path))) {
        free(w);
        return pare_fail(PARE_ENOMEM, "out of memory for a stream writer");
    }
    w->info = *info;
    w->npix = (size_t)info->channels * (size_t)info->height * (size_t)info->width;
    pare_wbuf_put(&w->b, STREAM_MAGIC, 8);
    pare_wbuf_u32(&w->b, STREAM_VERSION);
    pare_wbuf_u32(&w->b, (uint32_t)info->channels);
    pare_wbuf_u32(&w->b, (uint32_t)info->height);
    pare_wbuf_u32(&w->b, (uint32_t)info->width);
    pare_wbuf_u32(&w->b, (uint32_t)info->classes);
    pare_wbuf_u32(&w->b, 0);
    *out = w;
    return PARE_OK;
}

pare_status pare_stream_write(pare_stream_writer *w, const pare_record *rec)
{
    if (!w || !rec)
        return pare_fail(PARE_EINVAL, "pare_stream_write needs a writer and a record");
    switch (rec->kind) {
    case PARE_REC_SEGMENT:
        if (rec->label < 0)
            return pare_fail(PARE_EINVAL, "a segment marker's number must be >= 0, got %d", rec->label);
        pare_wbuf_u8(&w->b, REC_SEGMENT);
        pare_wbuf_u32(&w->b, (uint32_t)rec->label);
        break;
    case PARE_REC_INFER:
    case PARE_REC_LABELLED: {
        int lab = rec->label;
        if (rec->kind == PARE_REC_LABELLED && (lab < 0 || lab >= w->info.classes))
            return pare_fail(PARE_EINVAL, "a labelled sample's label must be in 0..%d, got %d", w->info.classes - 1,
                             lab);
        if (rec->kind == PARE_REC_INFER && lab >= w->info.classes)
            return pare_fail(PARE_EINVAL, "an inference request's true class must be in 0..%d or -1, got %d",
                             w->info.classes - 1, lab);
        if (!rec->pixels)
            return pare_fail(PARE_EINVAL, "a sample record needs its pixels");
        uint16_t l = lab < 0 ? (uint16_t)NO_LABEL : (uint16_t)lab;
        uint8_t b[3] = {rec->kind == PARE_REC_INFER ? REC_INFER : REC_LABELLED, (uint8_t)(l & 255),
                        (uint8_t)(l >> 8)};
        pare_wbuf_put(&w->b, b, 3);
        pare_wbuf_put(&w->b, rec->pixels, w->npix);
        break;
    }
    default:
        return pare_fail(PARE_EINVAL, "unknown record kind %d", (int)rec->kind);
    }
    return pare_wbuf_status(&w->b);
}

void pare_stream_writer_free(pare_stream_writer *w)
{
    if (!w)
        return;
    pare_wbuf_free(&w->b);
    free(w->path);
    free(w);
}

pare_status pare_stream_writer_finish(pare_stream_writer *w)
{
    if (!w)
        return pare_fail(PARE_EINVAL, "pare_stream_writer_finish needs a writer");
    pare_status s = pare_wbuf_status(&w->b);
    if (s == PARE_OK) {
        if (!strcmp(w->path, "-")) {
            if (fwrite(w->b.p, 1, w->b.len, stdout) != w->b.len || fflush(stdout) != 0)
                s = pare_fail(PARE_EIO, "writing the stream to standard output failed");
        } else {
            s = pare_write_file_atomic(w->path, w->b.p, w->b.len);
        }
    }
    pare_stream_writer_free(w);
    return s;
}

/* ---- the learner ------------------------------------------------------------ */

struct pare_online {
    pare_graph *g;
    pare_online_options o;
    int threads;
    size_t isz;              /* values per sample */
    int c, classes;
    float (*lut)[256];       /* per channel: uint8 -> normalised float */
    pare_exec *infer;        /* batch 1, inference */
    pare_exec *train;        /* batch o.batch, training (NULL for NEVER) */
    pare_optim *opt;
    float *out1;             /* logits of one sample */
    /* the replay buffer: a ring of the latest labelled samples */
    uint8_t *rb_px;
    int32_t *rb_lab;
    long rb_n, rb_head;      /* count held, index of the oldest */
    long new_labels;         /* since the last round */
    int boost;               /* after a drift the threshold is divided by 2^boost, and boost falls by one a round */
    double load;             /* share of inference requests among recent records */
    /* drift: prequential correctness of the latest window labels */
    uint8_t *win;
    int win_n, win_pos, win_sum;
    double ref;
    int ref_ok;
    int drift_keep;          /* labels since the estimated change point */
    long *drift_at;
    int n_drift, cap_drift;
    /* intra-tuning */
    int n_units, n_frozen, max_frozen;
    pare_unit *units;
    uint8_t *orig_frozen;    /* per parameter: frozen in the model as given */
    float **snap;            /* per unit: activations on the probe at the last round end */
    float *probe_x;          /* probe_n samples, normalised */
    int probe_n;
    /* round scratch */
    float *xb;
    int32_t *yb;
    long *perm;
    long global_step;
    pare_online_stats st;
    pare_online_segment *seg;
    int n_seg, cap_seg;
};

void pare_online_options_init(pare_online_options *o)
{
    memset(o, 0, sizeof *o);
    o->policy = PARE_ONLINE_EDGEOL;
    o->lr = 0.01f;
    o->momentum = 0.9f;
    o->weight_decay = 5e-4f;
    o->batch = 32;
    o->epochs = 4;
    o->buffer = 512;
    o->min_new = 64;
    o->load_scale = 1.0f;
    o->window = 100;
    o->drift_drop = 0.15f;
    o->freeze_cka = 0.999f;
    o->probe = 32;
}

static pare_status check_options(const pare_online_options *o)
{
    if (o->policy != PARE_ONLINE_EDGEOL && o->policy != PARE_ONLINE_IMMEDIATE && o->policy != PARE_ONLINE_NEVER)
        return pare_fail(PARE_EINVAL, "unknown online policy %d (edgeol, immediate or never)", (int)o->policy);
    if (!(o->lr > 0) || !isfinite(o->lr))
        return pare_fail(PARE_EINVAL, "the online learning rate must be positive, got %g", (double)o->lr);
    if (!(o->momentum >= 0 && o->momentum < 1))
        return pare_fail(PARE_EINVAL, "the online momentum must be in [0, 1), got %g", (double)o->momentum);
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return pare_fail(PARE_EINVAL, "the online weight decay must be >= 0, got %g", (double)o->weight_decay);
    if (o->batch < 1 || o->batch > 4096)
        return pare_fail(PARE_EINVAL, "the online batch must be between 1 and 4096, got %d", o->batch);
    if (o->epochs < 1 || o->epochs > 1000)
        return pare_fail(PARE_EINVAL, "the epochs of a round must be between 1 and 1000, got %d", o->epochs);
    if (o->buffer < 2 || o->buffer > 1 << 20)
        return pare_fail(PARE_EINVAL, "the replay buffer must hold between 2 and 1048576 samples, got %d",
                         o->buffer);
    if (o->min_new < 1 || o->min_new > 1 << 24)
        return pare_fail(PARE_EINVAL, "the new labels per round must be between 1 and 16777216, got %d",
                         o->min_new);
    if (!(o->load_scale >= 0 && o->load_scale <= 1000))
        return pare_fail(PARE_EINVAL, "the load scale must be between 0 and 1000, got %g", (double)o->load_scale);
    if (o->window < 1 || o->window > 1 << 20)
        return pare_fail(PARE_EINVAL, "the drift window must be between 1 and 1048576 labels, got %d", o->window);
    if (!(o->drift_drop > 0 && o->drift_drop <= 1))
        return pare_fail(PARE_EINVAL, "the drift threshold must be in (0, 1], got %g", (double)o->drift_drop);
    if (!(o->freeze_cka >= 0 && o->freeze_cka <= 1))
        return pare_fail(PARE_EINVAL, "the freezing CKA threshold must be in [0, 1] (0: off), got %g",
                         (double)o->freeze_cka);
    if (o->probe < 2 || o->probe > 4096)
        return pare_fail(PARE_EINVAL, "the probe batch must be between 2 and 4096 samples, got %d", o->probe);
    return PARE_OK;
}

static pare_status new_segment(pare_online *ol, int id)
{
    if (ol->n_seg == ol->cap_seg) {
        int cap = ol->cap_seg ? ol->cap_seg * 2 : 8;
        pare_online_segment *ns = realloc(ol->seg, sizeof *ns * (size_t)cap);
        if (!ns)
            return pare_fail(PARE_ENOMEM, "out of memory for the segments of the stream");
        ol->seg = ns;
        ol->cap_seg = cap;
    }
    pare_online_segment *s = &ol->seg[ol->n_seg++];
    memset(s, 0, sizeof *s);
    s->id = id;
    s->first_record = ol->st.records;
    return PARE_OK;
}

void pare_online_free(pare_online *ol)
{
    if (!ol)
        return;
    if (ol->orig_frozen) {
        /* the model leaves as it came: the units frozen here thaw */
        for (int p = 0; p < ol->g->n_params; p++)
            ol->g->params[p].frozen = ol->orig_frozen[p];
        free(ol->orig_frozen);
    }
    pare_exec_free(ol->infer);
    pare_exec_free(ol->train);
    pare_optim_free(ol->opt);
    if (ol->snap)
        for (int u = 0; u < ol->n_units; u++)
            free(ol->snap[u]);
    free(ol->snap);
    free(ol->units);
    free(ol->probe_x);
    free(ol->lut);
    free(ol->out1);
    free(ol->rb_px);
    free(ol->rb_lab);
    free(ol->win);
    free(ol->drift_at);
    free(ol->xb);
    free(ol->yb);
    free(ol->perm);
    free(ol->seg);
    free(ol);
}

pare_status pare_online_new(pare_graph *g, const pare_online_options *o, pare_online **out)
{
    if (!out)
        return pare_fail(PARE_EINVAL, "pare_online_new needs somewhere to put the learner");
    *out = NULL;
    if (!g)
        return pare_fail(PARE_EINVAL, "an online learner needs a graph");
    if (g->err)
        return g->err;
    pare_online_options def;
    if (!o) {
        pare_online_options_init(&def);
        o = &def;
    }
    pare_status s = check_options(o);
    if (s != PARE_OK)
        return s;
    pare_shape in = g->nodes[0].out, os = g->nodes[g->output].out;
    if (os.h != 1 || os.w != 1 || os.c < 1)
        return pare_fail(PARE_ESHAPE, "online learning needs a classifier: the model's output is %dx%dx%d, not a "
                         "vector of class scores", os.c, os.h, os.w);
    pare_online *ol = calloc(1, sizeof *ol);
    if (!ol)
        return pare_fail(PARE_ENOMEM, "out of memory for the online learner");
    ol->g = g;
    ol->o = *o;
    ol->threads = pare_threads_resolve(o->threads);
    ol->isz = pare_shape_size(in);
    ol->c = in.c;
    ol->classes = os.c;
    ol->load = 0;
    ol->lut = malloc(sizeof *ol->lut * (size_t)in.c);
    ol->out1 = malloc(sizeof(float) * (size_t)os.c);
    ol->win = calloc((size_t)o->window, 1);
    if (!ol->lut || !ol->out1 || !ol->win)
        goto nomem;
    float mean[PARE_DATA_MAX_CH], sd[PARE_DATA_MAX_CH];
    int nn = pare_graph_norm_get(g, mean, sd, PARE_DATA_MAX_CH);
    /* as the dataset readers do, so served inputs equal `pare run`'s */
    pare_data_norm_lut(nn > 0 ? nn : 0, mean, sd, in.c, ol->lut);
    s = pare_exec_new(g, 1, 0, ol->threads, &ol->infer);
    if (s != PARE_OK)
        goto fail;
    if (o->policy != PARE_ONLINE_NEVER) {
        s = pare_exec_new(g, o->batch > o->probe ? o->batch : o->probe, 1, ol->threads, &ol->train);
        if (s != PARE_OK)
            goto fail;
        pare_train_config c;
        pare_train_config_init(&c);
        c.lr = o->lr;
        c.momentum = o->momentum;
        c.weight_decay = o->weight_decay;
        c.batch = o->batch;
        c.schedule = PARE_SCHED_CONSTANT;
        c.threads = ol->threads;
        s = pare_optim_new(g, &c, &ol->opt);
        if (s != PARE_OK)
            goto fail;
        ol->rb_px = malloc(ol->isz * (size_t)o->buffer);
        ol->rb_lab = malloc(sizeof(int32_t) * (size_t)o->buffer);
        ol->xb = malloc(sizeof(float) * ol->isz * (size_t)(o->batch > o->probe ? o->batch : o->probe));
        ol->yb = malloc(sizeof(int32_t) * (size_t)o->batch);
        ol->perm = malloc(sizeof(long) * (size_t)o->buffer);
        if (!ol->rb_px || !ol->rb_lab || !ol->xb || !ol->yb || !ol->perm)
            goto nomem;
    }
    ol->n_units = pare_units(g, NULL);
    ol->units = calloc((size_t)ol->n_units + 1, sizeof *ol->units);
    ol->snap = calloc((size_t)ol->n_units + 1, sizeof *ol->snap);
    ol->orig_frozen = malloc((size_t)g->n_params + 1);
    if (!ol->units || !ol->snap || !ol->orig_frozen)
        goto nomem;
    for (int p = 0; p < g->n_params; p++)
        ol->orig_frozen[p] = (uint8_t)(g->params[p].frozen != 0);
    pare_units(g, ol->units);
    ol->max_frozen = ol->n_units - 1;
    ol->st.units = ol->n_units;
    s = new_segment(ol, 0);
    if (s != PARE_OK)
        goto fail;
    *out = ol;
    return PARE_OK;
nomem:
    s = pare_fail(PARE_ENOMEM, "out of memory for the online learner");
fail:
    pare_online_free(ol);
    return s;
}

static void to_float(const pare_online *ol, const uint8_t *px, float *x)
{
    size_t plane = ol->isz / (size_t)ol->c;
    for (int ch = 0; ch < ol->c; ch++) {
        const float *l = ol->lut[ch];
        for (size_t i = 0; i < plane; i++)
            x[(size_t)ch * plane + i] = l[px[(size_t)ch * plane + i]];
    }
}

static int argmax(const float *v, int k)
{
    int b = 0;
    for (int i = 1; i < k; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

static int predict(pare_online *ol, const uint8_t *px)
{
    to_float(ol, px, pare_exec_input(ol->infer));
    pare_exec_forward(ol->infer, 1, 0);
    return argmax(pare_exec_output(ol->infer), ol->classes);
}

/* ---- freezing ---- */

static void set_unit_frozen(pare_online *ol, int u, int frozen)
{
    int nodes[2] = {ol->units[u].node, ol->units[u].bn};
    for (int k = 0; k < 2; k++) {
        if (nodes[k] < 0)
            continue;
        const pare_node *nd = &ol->g->nodes[nodes[k]];
        for (int j = 0; j < nd->n_param; j++)
            ol->g->params[nd->param[j]].frozen = frozen ? 1 : ol->orig_frozen[nd->param[j]];
    }
}

static void unfreeze_all(pare_online *ol)
{
    for (int u = 0; u < ol->n_frozen; u++)
        set_unit_frozen(ol, u, 0);
    ol->n_frozen = 0;
    for (int u = 0; u < ol->n_units; u++) {
        free(ol->snap[u]);
        ol->snap[u] = NULL;
    }
    free(ol->probe_x);
    ol->probe_x = NULL;
    ol->probe_n = 0;
}

static long rb_index(const pare_online *ol, long i) { return (ol->rb_head + i) % ol->o.buffer; }

/* The probe batch: fixed until a scenario change, drawn from the buffer. */
static pare_status pick_probe(pare_online *ol, long round)
{
    int n = ol->o.probe;
    if (ol->rb_n < n)
        return PARE_OK;
    ol->probe_x = malloc(sizeof(float) * ol->isz * (size_t)n);
    if (!ol->probe_x)
        return pare_fail(PARE_ENOMEM, "out of memory for the probe batch");
    pare_rng r;
    pare_rng_seed(&r, ol->o.seed, 0x9b0be, (uint64_t)round, 0);
    for (int i = 0; i < n; i++) {
        long j = (long)pare_rng_below(&r, (uint64_t)ol->rb_n);
        to_float(ol, ol->rb_px + ol->isz * (size_t)rb_index(ol, j), ol->probe_x + ol->isz * (size_t)i);
    }
    ol->probe_n = n;
    return PARE_OK;
}

/* At a round's end: the unfrozen units front to back keep freezing while their
 * activations on the probe are as similar (linear CKA) as the threshold to the
 * previous round's; the first check after a (re)start only records. */
static pare_status cka_check(pare_online *ol)
{
    if (!ol->probe_x || ol->n_frozen >= ol->max_frozen)
        return PARE_OK;
    pare_graph *g = ol->g;
    int n = ol->probe_n;
    memcpy(pare_exec_input(ol->train), ol->probe_x, sizeof(float) * ol->isz * (size_t)n);
    pare_exec_set_eval(ol->train, 1);
    pare_exec_forward(ol->train, n, 0);
    pare_exec_set_eval(ol->train, 0);
    int chain = 1, freeze_to = ol->n_frozen;
    for (int u = ol->n_frozen; u < ol->max_frozen; u++) {
        int v = ol->units[u].bn >= 0 ? ol->units[u].bn : ol->units[u].node;
        int d = (int)pare_shape_size(g->nodes[v].out);
        const float *a = pare_exec_value(ol->train, v);
        if (ol->snap[u]) {
            double sim = pare_linear_cka(ol->snap[u], d, a, d, n);
            if (chain && sim >= ol->o.freeze_cka)
                freeze_to = u + 1;
            else
                chain = 0;
        } else {
            chain = 0;
            ol->snap[u] = malloc(sizeof(float) * (size_t)d * (size_t)n);
            if (!ol->snap[u])
                return pare_fail(PARE_ENOMEM, "out of memory for the CKA snapshots");
        }
        memcpy(ol->snap[u], a, sizeof(float) * (size_t)d * (size_t)n);
    }
    while (ol->n_frozen < freeze_to)
        set_unit_frozen(ol, ol->n_frozen++, 1);
    return PARE_OK;
}

/* ---- rounds ---- */

static pare_status run_round(pare_online *ol, int forced)
{
    long n = ol->rb_n;
    if (n < 2)
        return PARE_OK;     /* batch norm needs two samples; the labels wait */
    double t0 = pare_now_s();
    pare_graph *g = ol->g;
    int B = ol->o.batch, k = ol->classes;
    long round = ol->st.rounds;
    pare_status s = PARE_OK;
    if (ol->o.freeze_cka > 0 && !ol->probe_x) {
        s = pick_probe(ol, round);
        if (s != PARE_OK)
            return s;
    }
    for (int ep = 0; ep < ol->o.epochs; ep++) {
        /* a seeded shuffle of the buffer */
        pare_rng r;
        pare_rng_seed(&r, ol->o.seed, 0x0471e, (uint64_t)round, (uint64_t)ep);
        for (long i = 0; i < n; i++)
            ol->perm[i] = i;
        for (long i = n - 1; i > 0; i--) {
            long j = (long)pare_rng_below(&r, (uint64_t)i + 1);
            long t = ol->perm[i];
            ol->perm[i] = ol->perm[j];
            ol->perm[j] = t;
        }
        for (long b0 = 0; b0 < n; b0 += B) {
            int m = (int)(n - b0 < B ? n - b0 : B);
            /* a tail batch too small for batch norm's statistics joins no step */
            if (m < 2 || (b0 > 0 && m < B / 4))
                break;
            float *x = pare_exec_input(ol->train);
            for (int i = 0; i < m; i++) {
                long j = rb_index(ol, ol->perm[b0 + i]);
                to_float(ol, ol->rb_px + ol->isz * (size_t)j, x + ol->isz * (size_t)i);
                ol->yb[i] = ol->rb_lab[j];
            }
            double f, fd;
            pare_train_flops(g, NULL, m, &f, &fd);
            uint64_t seed = pare_hash64(ol->o.seed ^ pare_hash64((uint64_t)ol->global_step + 0x0e11));
            pare_exec_forward(ol->train, m, seed);
            double loss = pare_softmax_xent(pare_exec_output(ol->train), ol->yb, m, k,
                                            pare_exec_output_grad(ol->train), NULL);
            if (!isfinite(loss)) {
                s = pare_fail(PARE_EINVAL, "the online fine-tuning loss is not finite (%g): lower the learning rate",
                              loss);
                goto done;
            }
            pare_exec_backward(ol->train, m);
            pare_optim_step(ol->opt, g, ol->train, ol->o.lr, ol->threads);
            ol->global_step++;
            ol->st.steps++;
            ol->st.samples_trained += m;
            ol->st.flops += f;
        }
    }
    if (ol->o.freeze_cka > 0)
        s = cka_check(ol);
done:
    ol->st.rounds++;
    ol->st.forced_rounds += forced != 0;
    ol->seg[ol->n_seg - 1].rounds++;
    ol->new_labels = 0;
    ol->st.finetune_seconds += pare_now_s() - t0;
    return s;
}

/* Keeps only the latest `keep` samples of the replay buffer. */
static void rb_keep_latest(pare_online *ol, long keep)
{
    if (ol->rb_n > keep) {
        ol->rb_head = rb_index(ol, ol->rb_n - keep);
        ol->rb_n = keep;
    }
}

static void rb_push(pare_online *ol, const uint8_t *px, int label)
{
    long slot;
    if (ol->rb_n < ol->o.buffer) {
        slot = rb_index(ol, ol->rb_n);
        ol->rb_n++;
    } else {
        slot = ol->rb_head;
        ol->rb_head = (ol->rb_head + 1) % ol->o.buffer;
    }
    memcpy(ol->rb_px + ol->isz * (size_t)slot, px, ol->isz);
    ol->rb_lab[slot] = label;
}

/* The drift detector: 1 when the window's accuracy fell below the reference by
 * more than the threshold (the window and reference then start over). */
static int drift_update(pare_online *ol, int correct)
{
    int W = ol->o.window;
    if (ol->win_n == W)
        ol->win_sum -= ol->win[ol->win_pos];
    else
        ol->win_n++;
    ol->win[ol->win_pos] = (uint8_t)correct;
    ol->win_sum += correct;
    ol->win_pos = (ol->win_pos + 1) % W;
    if (ol->win_n < W)
        return 0;
    double acc = (double)ol->win_sum / W;
    if (!ol->ref_ok) {
        ol->ref = acc;
        ol->ref_ok = 1;
        return 0;
    }
    if (acc < ol->ref - ol->o.drift_drop) {
        /* where the window's deficit against the reference is largest: the
         * latest s labels with the most missing correct answers (a change point) */
        double best = -1;
        int hits = 0;
        ol->drift_keep = W;
        for (int s = 1; s <= W; s++) {
            hits += ol->win[(ol->win_pos - s + W) % W];
            double deficit = s * ol->ref - hits;
            if (deficit > best) {
                best = deficit;
                ol->drift_keep = s;
            }
        }
        ol->win_n = ol->win_pos = ol->win_sum = 0;
        ol->ref_ok = 0;
        return 1;
    }
    /* slow, so that a drift spread over the window still shows as a drop */
    ol->ref += (acc - ol->ref) / (4.0 * W);
    return 0;
}

static pare_status add_drift(pare_online *ol)
{
    if (ol->n_drift == ol->cap_drift) {
        int cap = ol->cap_drift ? ol->cap_drift * 2 : 8;
        long *nd = realloc(ol->drift_at, sizeof(long) * (size_t)cap);
        if (!nd)
            return pare_fail(PARE_ENOMEM, "out of memory for the drift log");
        ol->drift_at = nd;
        ol->cap_drift = cap;
    }
    ol->drift_at[ol->n_drift++] = ol->st.records - 1;
    ol->st.drifts++;
    return PARE_OK;
}

pare_status pare_online_feed(pare_online *ol, const pare_record *rec, int *pred)
{
    if (!ol || !rec)
        return pare_fail(PARE_EINVAL, "pare_online_feed needs a learner and a record");
    if (pred)
        *pred = -1;
    if (rec->kind == PARE_REC_SEGMENT) {
        ol->st.records++;
        ol->st.segments++;
        pare_status s = new_segment(ol, rec->label);
        if (s == PARE_OK)
            ol->seg[ol->n_seg - 1].records++;
        return s;
    }
    if (rec->kind != PARE_REC_INFER && rec->kind != PARE_REC_LABELLED)
        return pare_fail(PARE_EINVAL, "unknown record kind %d", (int)rec->kind);
    if (!rec->pixels)
        return pare_fail(PARE_EINVAL, "a sample record needs its pixels");
    if (rec->kind == PARE_REC_LABELLED && (rec->label < 0 || rec->label >= ol->classes))
        return pare_fail(PARE_EINVAL, "label %d is outside the model's %d classes", rec->label, ol->classes);
    pare_online_segment *sg = &ol->seg[ol->n_seg - 1];
    int p = predict(ol, rec->pixels);
    if (pred)
        *pred = p;
    ol->st.records++;
    sg->records++;
    /* the inference load: an average over about the last 256 records */
    double a = ol->st.records < 256 ? 1.0 / (double)ol->st.records : 1.0 / 256;
    ol->load += a * ((rec->kind == PARE_REC_INFER ? 1.0 : 0.0) - ol->load);
    if (rec->kind == PARE_REC_INFER) {
        ol->st.inferences++;
        if (rec->label >= 0 && rec->label < ol->classes) {
            ol->st.served_known++;
            sg->served_known++;
            ol->st.served_correct += p == rec->label;
            sg->served_correct += p == rec->label;
        }
        return PARE_OK;
    }
    /* test, then train */
    int ok = p == rec->label;
    ol->st.labelled++;
    ol->st.correct += ok;
    sg->labelled++;
    sg->correct += ok;
    int drift = drift_update(ol, ok);
    if (drift) {
        pare_status s = add_drift(ol);
        if (s != PARE_OK)
            return s;
    }
    if (ol->o.policy == PARE_ONLINE_NEVER)
        return PARE_OK;
    rb_push(ol, rec->pixels, rec->label);
    ol->new_labels++;
    if (ol->o.policy == PARE_ONLINE_IMMEDIATE)
        return ol->new_labels >= ol->o.batch ? run_round(ol, 0) : PARE_OK;
    if (drift) {
        /* a scenario change: learn the new scenario now, every layer free */
        unfreeze_all(ol);
        rb_keep_latest(ol, ol->drift_keep > ol->o.batch ? ol->drift_keep : ol->o.batch);
        ol->boost = BOOST;
        return run_round(ol, 1);
    }
    double need = ol->o.min_new * (1.0 + ol->o.load_scale * ol->load);
    need /= (double)(1 << ol->boost);
    if ((double)ol->new_labels >= need) {
        if (ol->boost > 0)
            ol->boost--;
        return run_round(ol, 0);
    }
    return PARE_OK;
}

void pare_online_get_stats(const pare_online *ol, pare_online_stats *out)
{
    *out = ol->st;
    out->accuracy = ol->st.labelled ? (double)ol->st.correct / (double)ol->st.labelled : -1;
    out->served_accuracy = ol->st.served_known ? (double)ol->st.served_correct / (double)ol->st.served_known : -1;
    out->units = ol->n_units;
    out->units_frozen = ol->n_frozen;
}

int pare_online_segment_count(const pare_online *ol) { return ol ? ol->n_seg : 0; }

pare_status pare_online_segment_get(const pare_online *ol, int i, pare_online_segment *out)
{
    if (!ol || !out || i < 0 || i >= ol->n_seg)
        return pare_fail(PARE_EINVAL, "segment %d does not exist (%d segments)", i, ol ? ol->n_seg : 0);
    *out = ol->seg[i];
    return PARE_OK;
}

int pare_online_drifts(const pare_online *ol, const long **records)
{
    if (records)
        *records = ol->drift_at;
    return ol->n_drift;
}
