/* Charts as standalone SVG files: panels of line, marker and bar series with
 * nice ticks, grid lines and a legend, built in memory and written atomically. */
#include "report/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fsio.h"
#include "report/text.h"

/* Okabe & Ito's palette, which stays distinct under the common colour
 * blindnesses; its yellow is swapped for grey, which white paper washes out
 * less. */
static const char *const palette[PARE_CHART_MAX_SERIES] = {
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#7F7F7F", "#000000",
};

#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"
#define TICK_FONT 11.0
#define LABEL_FONT 12.0
#define TITLE_FONT 14.0
#define CHART_TITLE_FONT 16.0
/* Average advance of a sans-serif glyph in ems: widths are estimated, since
 * the real font is the viewer's, so the layout leaves some slack. */
#define GLYPH_EM 0.62
#define MAX_TICKS 64
#define CAT_LABEL_MAX 18
#define MAX_POINTS 50000000

typedef struct chart_series {
    char *name;
    pare_chart_style style;
    double *x, *y;
    int n;
    char color[8];
} chart_series;

typedef struct chart_panel {
    char *title, *xlabel, *ylabel;
    int fixed_x, fixed_y;
    double xlo, xhi, ylo, yhi;
    chart_series series[PARE_CHART_MAX_SERIES];
    int nseries;
    char **cats;
    int ncats;
} chart_panel;

struct pare_chart {
    int npanels, width, height;
    char *title;
    chart_panel panels[PARE_CHART_MAX_PANELS];
};

/* ---- building ------------------------------------------------------------ */

pare_chart *pare_chart_new(int panels, int width, int height)
{
    if (panels < 1 || panels > PARE_CHART_MAX_PANELS) {
        pare_fail(PARE_EINVAL, "a chart has 1 to %d panels, not %d", PARE_CHART_MAX_PANELS, panels);
        return NULL;
    }
    if (width <= 0)
        width = 460 * panels;
    if (height <= 0)
        height = 340;
    if (width < 160 * panels || height < 160 || width > 20000 || height > 20000) {
        pare_fail(PARE_EINVAL,
                  "a chart of %d panels must be %d to 20000 pixels wide and 160 to 20000 high, "
                  "not %dx%d",
                  panels, 160 * panels, width, height);
        return NULL;
    }
    pare_chart *c = calloc(1, sizeof *c);
    if (!c) {
        pare_fail(PARE_ENOMEM, "out of memory creating a chart");
        return NULL;
    }
    c->npanels = panels;
    c->width = width;
    c->height = height;
    return c;
}

static void free_panel(chart_panel *p)
{
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    for (int s = 0; s < p->nseries; s++) {
        free(p->series[s].name);
        free(p->series[s].x);
        free(p->series[s].y);
    }
    for (int i = 0; i < p->ncats; i++)
        free(p->cats[i]);
    free(p->cats);
}

void pare_chart_free(pare_chart *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->npanels; i++)
        free_panel(&c->panels[i]);
    free(c->title);
    free(c);
}

static chart_panel *get_panel(pare_chart *c, int panel, pare_status *s)
{
    if (panel < 0 || panel >= c->npanels) {
        *s = pare_fail(PARE_EINVAL, "chart panel %d does not exist (the chart has %d)", panel,
                       c->npanels);
        return NULL;
    }
    *s = PARE_OK;
    return &c->panels[panel];
}

/* Replaces *dst by a copy of src (NULL clears it). */
static pare_status set_text(char **dst, const char *src)
{
    char *copy = NULL;
    if (src && !(copy = pare_strdup(src)))
        return PARE_ENOMEM;
    free(*dst);
    *dst = copy;
    return PARE_OK;
}

pare_status pare_chart_title(pare_chart *c, const char *title)
{
    return set_text(&c->title, title);
}

pare_status pare_chart_panel(pare_chart *c, int panel, const char *title, const char *xlabel,
                             const char *ylabel)
{
    pare_status s;
    chart_panel *p = get_panel(c, panel, &s);
    if (!p)
        return s;
    if ((s = set_text(&p->title, title)) || (s = set_text(&p->xlabel, xlabel)) ||
        (s = set_text(&p->ylabel, ylabel)))
        return s;
    return PARE_OK;
}

static pare_status check_range(double lo, double hi, const char *axis, int panel)
{
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return pare_fail(PARE_EINVAL,
                         "the %s range of chart panel %d must be finite with lo < hi, "
                         "not [%g, %g]",
                         axis, panel, lo, hi);
    return PARE_OK;
}

pare_status pare_chart_yrange(pare_chart *c, int panel, double lo, double hi)
{
    pare_status s;
    chart_panel *p = get_panel(c, panel, &s);
    if (!p || (s = check_range(lo, hi, "y", panel)))
        return s;
    p->fixed_y = 1;
    p->ylo = lo;
    p->yhi = hi;
    return PARE_OK;
}

pare_status pare_chart_xrange(pare_chart *c, int panel, double lo, double hi)
{
    pare_status s;
    chart_panel *p = get_panel(c, panel, &s);
    if (!p || (s = check_range(lo, hi, "x", panel)))
        return s;
    p->fixed_x = 1;
    p->xlo = lo;
    p->xhi = hi;
    return PARE_OK;
}

pare_status pare_chart_series(pare_chart *c, int panel, const char *name, pare_chart_style style,
                              const double *x, const double *y, int n)
{
    pare_status s;
    chart_panel *p = get_panel(c, panel, &s);
    if (!p)
        return s;
    if (p->nseries == PARE_CHART_MAX_SERIES)
        return pare_fail(PARE_EINVAL, "chart panel %d already has %d series, the most it takes",
                         panel, PARE_CHART_MAX_SERIES);
    if ((int)style < PARE_CHART_LINE || style > PARE_CHART_BARS)
        return pare_fail(PARE_EINVAL, "unknown chart series style %d", (int)style);
    if (n < 0 || n > MAX_POINTS || (n > 0 && !y))
        return pare_fail(PARE_EINVAL,
                         "a chart series needs 0 to %d points and their y values, "
                         "not %d",
                         MAX_POINTS, n);
    chart_series *se = &p->series[p->nseries];
    memset(se, 0, sizeof *se);
    se->name = pare_strdup(name ? name : "");
    se->x = malloc(((size_t)n + 1) * sizeof(double));
    se->y = malloc(((size_t)n + 1) * sizeof(double));
    if (!se->name || !se->x || !se->y)
        goto fail_oom;
    for (int i = 0; i < n; i++) {
        se->x[i] = x ? x[i] : (double)i;
        se->y[i] = y[i];
    }
    se->n = n;
    se->style = style;
    snprintf(se->color, sizeof se->color, "%s", palette[p->nseries]);
    p->nseries++;
    return PARE_OK;

fail_oom:
    free(se->name);
    free(se->x);
    free(se->y);
    memset(se, 0, sizeof *se);
    return pare_fail(PARE_ENOMEM, "out of memory adding %d points to a chart", n);
}

static int is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

pare_status pare_chart_series_color(pare_chart *c, int panel, const char *color)
{
    pare_status s;
    chart_panel *p = get_panel(c, panel, &s);
    if (!p)
        return s;
    if (p->nseries == 0)
        return pare_fail(PARE_EINVAL, "chart panel %d has no series to colour yet", panel);
    size_t n = color ? strlen(color) : 0;
    int ok = (n == 4 || n == 7) && color[0] == '#';
    for (size_t i = 1; ok && i < n; i++)
        ok = is_hex(color[i]);
    if (!ok)
        return pare_fail(PARE_EINVAL, "a series colour is written #rgb or #rrggbb, not \"%s\"",
                         color ? color : "(null)");
    snprintf(p->series[p->nseries - 1].color, sizeof p->series[0].color, "%s", color);
    return PARE_OK;
}

pare_status pare_chart_categories(pare_chart *c, int panel, const char *const *labels, int n)
{
    pare_status s;
    chart_panel *p = get_panel(c, panel, &s);
    if (!p)
        return s;
    if (n < 0 || n > 100000 || (n > 0 && !labels))
        return pare_fail(PARE_EINVAL, "a chart takes 0 to 100000 category labels, not %d", n);
    char **cats = calloc((size_t)n + 1, sizeof *cats);
    if (!cats)
        return pare_fail(PARE_ENOMEM, "out of memory copying chart categories");
    for (int i = 0; i < n; i++) {
        cats[i] = pare_strdup(labels[i] ? labels[i] : "");
        if (!cats[i]) {
            for (int k = 0; k < i; k++)
                free(cats[k]);
            free(cats);
            return PARE_ENOMEM;
        }
    }
    for (int i = 0; i < p->ncats; i++)
        free(p->cats[i]);
    free(p->cats);
    p->cats = cats;
    p->ncats = n;
    return PARE_OK;
}

/* ---- axes ---------------------------------------------------------------- */

typedef struct axis {
    double lo, hi, step;
    int nticks;
    double ticks[MAX_TICKS];
    char labels[MAX_TICKS][24];
    double label_w; /* widest tick label, pixels */
} axis;

static double text_width(const char *s, double size)
{
    return (double)pare_utf8_width(s) * size * GLYPH_EM;
}

/* 1, 2 or 5 times a power of ten, near range / target. */
static double nice_step(double range, double target)
{
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* The nice step below step: 1 → 0.5, 2 → 1, 5 → 2 (times a power of ten). */
static double smaller_step(double step)
{
    double mag = pow(10, floor(log10(step) + 1e-9)), m = step / mag;
    return m > 4 ? 2 * mag : m > 1.5 ? mag : 0.5 * mag;
}

static void strip_zeros(char *s)
{
    /* "1.50k" → "1.5k", "2.000e-05" → "2e-05": trailing zeros of a fraction
     * carry nothing on a tick label. */
    char *dot = strchr(s, '.');
    if (!dot)
        return;
    char *end = dot + 1;
    while (*end >= '0' && *end <= '9')
        end++;
    char *z = end;
    while (z > dot + 1 && z[-1] == '0')
        z--;
    if (z == dot + 1)
        z = dot;
    memmove(z, end, strlen(end) + 1);
}

static int decimals_for(double step)
{
    int d = -(int)floor(log10(step) + 1e-9);
    return d < 0 ? 0 : d > 12 ? 12 : d;
}

/* Compact tick text: 0.25, 1.5k, 2e-05; as many digits as the step needs. */
static void format_tick(double v, double step, double maxabs, char *buf, size_t n)
{
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    if (maxabs >= 1e12 || maxabs < 1e-3) {
        int digits = (int)floor(log10(fabs(v))) - (int)floor(log10(step) + 1e-9);
        digits = digits < 0 ? 0 : digits > 6 ? 6 : digits;
        snprintf(buf, n, "%.*e", digits, v);
    } else if (maxabs >= 1000) {
        double unit = maxabs >= 1e9 ? 1e9 : maxabs >= 1e6 ? 1e6 : 1e3;
        char suffix = maxabs >= 1e9 ? 'G' : maxabs >= 1e6 ? 'M' : 'k';
        int d = decimals_for(step / unit);
        /* 1.001k reads worse than 1001. */
        if (d > 2)
            snprintf(buf, n, "%.*f", decimals_for(step), v);
        else
            snprintf(buf, n, "%.*f%c", d, v / unit, suffix);
    } else {
        snprintf(buf, n, "%.*f", decimals_for(step), v);
    }
    strip_zeros(buf);
}

/* Ticks at multiples of a nice step inside [lo, hi], about target of them. */
static void make_ticks(axis *a, double target, int integral)
{
    double range = a->hi - a->lo;
    if (target < 2)
        target = 2;
    double step = nice_step(range, target);
    if (integral && step < 1)
        step = 1;
    a->nticks = 0;
    a->label_w = 0;
    if (!(step > 0) || !isfinite(step))
        return;
    double k0, k1;
    for (;;) {
        k0 = ceil(a->lo / step - 1e-9);
        k1 = floor(a->hi / step + 1e-9);
        if (k1 - k0 + 1 <= MAX_TICKS)
            break;
        step *= 2;
    }
    /* A range narrower than one step would show a single tick or none. */
    while (k1 - k0 + 1 < 2 && !(integral && step <= 1)) {
        double smaller = smaller_step(step);
        if (smaller < range * 1e-12)
            break;
        step = smaller;
        k0 = ceil(a->lo / step - 1e-9);
        k1 = floor(a->hi / step + 1e-9);
    }
    a->step = step;
    double maxabs = 0;
    for (double k = k0; k <= k1 && a->nticks < MAX_TICKS; k++) {
        double v = k * step;
        if (fabs(v) < step * 1e-9)
            v = 0;
        a->ticks[a->nticks++] = v;
        if (fabs(v) > maxabs)
            maxabs = fabs(v);
    }
    for (int i = 0; i < a->nticks; i++) {
        format_tick(a->ticks[i], step, maxabs, a->labels[i], sizeof a->labels[i]);
        double w = text_width(a->labels[i], TICK_FONT);
        if (w > a->label_w)
            a->label_w = w;
    }
}

/* ---- layout -------------------------------------------------------------- */

typedef struct frame {
    double left, right, top, bottom; /* the plot area, pixels */
    axis x, y;
    int integral_x;  /* every x is a whole number: no ticks between them */
    int nbars;       /* bar series, drawn side by side */
    double bar_gap;  /* x distance between neighbouring bars */
    int cat_every;   /* label every n-th category */
    int cat_rotated; /* category labels at 45 degrees */
    double cat_maxw; /* widest category label */
    double cat_firstw;
} frame;

static double map_x(const frame *f, double v)
{
    double p = f->left + (v - f->x.lo) / (f->x.hi - f->x.lo) * (f->right - f->left);
    /* Far-off points are clipped anyway; this keeps their numbers short. */
    return p < -1e5 ? -1e5 : p > 1e5 ? 1e5 : p;
}

static double map_y(const frame *f, double v)
{
    double p = f->bottom - (v - f->y.lo) / (f->y.hi - f->y.lo) * (f->bottom - f->top);
    return p < -1e5 ? -1e5 : p > 1e5 ? 1e5 : p;
}

static int finite_point(const chart_series *s, int i)
{
    return isfinite(s->x[i]) && isfinite(s->y[i]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Smallest distance between distinct x of the bar series (1 when unknown). */
static double bar_gap(const chart_panel *p)
{
    size_t n = 0;
    for (int s = 0; s < p->nseries; s++)
        if (p->series[s].style == PARE_CHART_BARS)
            n += (size_t)p->series[s].n;
    double *xs = n ? malloc(n * sizeof *xs) : NULL;
    if (!xs)
        return 1;
    size_t k = 0;
    for (int s = 0; s < p->nseries; s++) {
        const chart_series *se = &p->series[s];
        if (se->style != PARE_CHART_BARS)
            continue;
        for (int i = 0; i < se->n; i++)
            if (finite_point(se, i))
                xs[k++] = se->x[i];
    }
    qsort(xs, k, sizeof *xs, cmp_double);
    double gap = INFINITY;
    for (size_t i = 1; i < k; i++)
        if (xs[i] > xs[i - 1] && xs[i] - xs[i - 1] < gap)
            gap = xs[i] - xs[i - 1];
    free(xs);
    return isfinite(gap) ? gap : 1;
}

/* Keeps an axis drawable: finite, and wide enough for a tick step (a range
 * of 1e-320, or one that overflows, has none). */
static void sane_range(double *lo, double *hi)
{
    const double big = 1e300;
    *lo = fmin(fmax(*lo, -big), big);
    *hi = fmin(fmax(*hi, -big), big);
    double mid = *lo / 2 + *hi / 2, half = fmax(fabs(mid) * 1e-9, 1e-290);
    if (!(*hi - *lo >= 2 * half)) {
        *lo = mid - half;
        *hi = mid + half;
    }
}

/* The data ranges of a panel, with margins, before any pixel is placed. */
static void data_ranges(const chart_panel *p, frame *f)
{
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    f->integral_x = 1;
    f->nbars = 0;
    for (int s = 0; s < p->nseries; s++) {
        const chart_series *se = &p->series[s];
        if (se->style == PARE_CHART_BARS)
            f->nbars++;
        for (int i = 0; i < se->n; i++) {
            if (!finite_point(se, i))
                continue;
            xmin = fmin(xmin, se->x[i]);
            xmax = fmax(xmax, se->x[i]);
            ymin = fmin(ymin, se->y[i]);
            ymax = fmax(ymax, se->y[i]);
            if (se->x[i] != floor(se->x[i]))
                f->integral_x = 0;
        }
    }
    int any = xmin <= xmax;
    f->bar_gap = f->nbars ? bar_gap(p) : 1;
    if (p->ncats > 0) {
        f->bar_gap = f->nbars ? fmin(f->bar_gap, 1) : 1;
        xmin = any ? fmin(xmin, 0) : 0;
        xmax = any ? fmax(xmax, p->ncats - 1) : p->ncats - 1;
    }

    if (p->fixed_x) {
        f->x.lo = p->xlo;
        f->x.hi = p->xhi;
    } else if (!any && p->ncats == 0) {
        f->x.lo = 0;
        f->x.hi = 1;
    } else if (f->nbars || p->ncats > 0) {
        /* Half a slot on each side, so the outer bars are whole. */
        f->x.lo = xmin - f->bar_gap / 2;
        f->x.hi = xmax + f->bar_gap / 2;
    } else {
        double pad = xmax > xmin ? 0.03 * (xmax - xmin) : fmax(fabs(xmax) * 0.1, 1);
        f->x.lo = xmin - pad;
        f->x.hi = xmax + pad;
    }

    if (p->fixed_y) {
        f->y.lo = p->ylo;
        f->y.hi = p->yhi;
    } else if (!any) {
        f->y.lo = 0;
        f->y.hi = 1;
    } else {
        /* Bars start at 0, so 0 is on the axis and gets no margin below
         * data that lies all on one side of it. */
        double lo = ymin, hi = ymax;
        if (f->nbars) {
            lo = fmin(lo, 0);
            hi = fmax(hi, 0);
        }
        if (hi == lo) {
            double pad = fmax(fabs(hi) * 0.1, 0.5);
            lo -= f->nbars && lo == 0 ? 0 : pad;
            hi += pad;
        } else {
            double pad = 0.05 * (hi - lo);
            if (!(f->nbars && lo == 0))
                lo -= pad;
            if (!(f->nbars && hi == 0))
                hi += pad;
        }
        f->y.lo = lo;
        f->y.hi = hi;
    }
    sane_range(&f->x.lo, &f->x.hi);
    sane_range(&f->y.lo, &f->y.hi);
}

/* Category label i, cut to CAT_LABEL_MAX code points with an ellipsis. */
static void cat_label(const chart_panel *p, int i, char *buf, size_t n)
{
    const char *s = p->cats[i];
    if (pare_utf8_width(s) <= CAT_LABEL_MAX) {
        snprintf(buf, n, "%s", s);
        return;
    }
    size_t k = pare_utf8_prefix(s, CAT_LABEL_MAX - 1);
    snprintf(buf, n, "%.*s\xE2\x80\xA6", (int)k, s);
}

/* Which category labels show and how: horizontal when they fit side by side
 * (every n-th when short labels are crowded), else at 45 degrees. */
static void plan_categories(const chart_panel *p, frame *f)
{
    char buf[128];
    f->cat_maxw = 0;
    f->cat_firstw = 0;
    for (int i = 0; i < p->ncats; i++) {
        cat_label(p, i, buf, sizeof buf);
        double w = text_width(buf, TICK_FONT);
        f->cat_maxw = fmax(f->cat_maxw, w);
    }
    double slot = (f->right - f->left) / (f->x.hi - f->x.lo);
    if (slot <= 0)
        slot = 1;
    int every_flat = (int)fmin(ceil((f->cat_maxw + 8) / slot), 1e6);
    int every_rot = (int)fmin(ceil(14 / (slot * 0.7071)), 1e6);
    if (every_flat <= 1 || f->cat_maxw <= 4 * TICK_FONT * GLYPH_EM) {
        f->cat_rotated = 0;
        f->cat_every = every_flat < 1 ? 1 : every_flat;
    } else {
        f->cat_rotated = 1;
        f->cat_every = every_rot < 1 ? 1 : every_rot;
    }
    for (int i = 0; i < p->ncats; i++) {
        if (i % f->cat_every == 0 && map_x(f, i) >= f->left - 0.5) {
            cat_label(p, i, buf, sizeof buf);
            f->cat_firstw = text_width(buf, TICK_FONT);
            break;
        }
    }
}

/* Places the plot area inside the panel box: the margins depend on the tick
 * labels, which depend on the plot size, so two passes settle it. */
static void layout(const chart_panel *p, double x0, double y0, double w, double h, frame *f)
{
    data_ranges(p, f);
    double top = y0 + (p->title && *p->title ? 32 : 14);
    f->top = top;
    f->bottom = y0 + h - 50;
    f->left = x0 + 60;
    f->right = x0 + w - 16;
    for (int pass = 0; pass < 2; pass++) {
        make_ticks(&f->y, (f->bottom - f->top) / 38, 0);
        double left = x0 + 8 + (p->ylabel && *p->ylabel ? 22 : 0) + f->y.label_w + 8;
        double right = x0 + w - 16;
        double xband;
        if (p->ncats > 0) {
            f->left = left;
            f->right = right;
            plan_categories(p, f);
            if (f->cat_rotated) {
                /* The first rotated label runs down-left from its tick. */
                double reach = f->cat_firstw * 0.7071 - (map_x(f, 0) - f->left);
                if (left < x0 + 6 + reach)
                    left = x0 + 6 + reach;
                xband = 8 + f->cat_maxw * 0.7071 + TICK_FONT;
            } else {
                xband = 8 + TICK_FONT + 2;
            }
        } else {
            f->left = left;
            f->right = right;
            double per = fmax(64, f->x.label_w + 20);
            make_ticks(&f->x, (right - left) / per, f->integral_x);
            per = fmax(64, f->x.label_w + 20);
            make_ticks(&f->x, (right - left) / per, f->integral_x);
            /* The last tick label is centred on the axis end. */
            if (f->x.nticks > 0) {
                double last = f->x.labels[f->x.nticks - 1][0]
                                  ? text_width(f->x.labels[f->x.nticks - 1], TICK_FONT)
                                  : 0;
                double over = map_x(f, f->x.ticks[f->x.nticks - 1]) + last / 2 - (x0 + w - 4);
                if (over > 0)
                    right -= over;
            }
            xband = 8 + TICK_FONT + 2;
        }
        /* Long labels in a narrow panel: keep some plot rather than none. */
        if (right - left < 40)
            left = right - 40;
        f->left = left;
        f->right = right;
        f->bottom = y0 + h - 8 - (p->xlabel && *p->xlabel ? 20 : 0) - xband;
        if (f->bottom < f->top + 40)
            f->bottom = f->top + 40;
    }
    if (p->ncats > 0)
        plan_categories(p, f);
}

/* ---- drawing ------------------------------------------------------------- */

static void text_at(pare_strbuf *b, double x, double y, const char *anchor, double size,
                    const char *extra, const char *s)
{
    pare_strbuf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%g\"%s>", x,
                       y, anchor, size, extra ? extra : "");
    pare_strbuf_xml(b, s);
    pare_strbuf_puts(b, "</text>\n");
}

/* A copy of s cut with an ellipsis to fit max_w pixels at this size. */
static void fit_text(const char *s, double size, double max_w, char *buf, size_t n)
{
    size_t cols = (size_t)fmax(1, max_w / (size * GLYPH_EM));
    if (pare_utf8_width(s) <= cols) {
        snprintf(buf, n, "%s", s);
        return;
    }
    size_t k = pare_utf8_prefix(s, cols > 1 ? cols - 1 : 1);
    snprintf(buf, n, "%.*s\xE2\x80\xA6", (int)k, s);
}

static void draw_axes(pare_strbuf *b, const chart_panel *p, const frame *f)
{
    char buf[160];
    /* Grid first, so data and axes sit on top of it. */
    pare_strbuf_puts(b, "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
    for (int i = 0; i < f->y.nticks; i++) {
        double y = map_y(f, f->y.ticks[i]);
        pare_strbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", f->left,
                           y, f->right, y);
    }
    if (p->ncats == 0) {
        for (int i = 0; i < f->x.nticks; i++) {
            double x = map_x(f, f->x.ticks[i]);
            pare_strbuf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x,
                               f->top, x, f->bottom);
        }
    }
    pare_strbuf_puts(b, "</g>\n");
    if (f->nbars && f->y.lo < 0 && f->y.hi > 0) {
        double y = map_y(f, 0);
        pare_strbuf_printf(b,
                           "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                           "stroke=\"#999\" stroke-width=\"1\"/>\n",
                           f->left, y, f->right, y);
    }

    pare_strbuf_printf(b,
                       "<path d=\"M%.1f %.1fV%.1fH%.1f\" fill=\"none\" stroke=\"#444\" "
                       "stroke-width=\"1\"/>\n",
                       f->left, f->top, f->bottom, f->right);
    pare_strbuf_puts(b, "<g class=\"yticks\">\n");
    for (int i = 0; i < f->y.nticks; i++) {
        double y = map_y(f, f->y.ticks[i]);
        pare_strbuf_printf(
            b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n",
            f->left - 4, y, f->left, y);
        text_at(b, f->left - 7, y + TICK_FONT * 0.35, "end", TICK_FONT, NULL, f->y.labels[i]);
    }
    pare_strbuf_puts(b, "</g>\n<g class=\"xticks\">\n");
    double ty = f->bottom + 6 + TICK_FONT;
    if (p->ncats > 0) {
        for (int i = 0; i < p->ncats; i += f->cat_every) {
            double x = map_x(f, i);
            if (x < f->left - 0.5 || x > f->right + 0.5)
                continue;
            pare_strbuf_printf(
                b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x,
                f->bottom, x, f->bottom + 4);
            cat_label(p, i, buf, sizeof buf);
            if (f->cat_rotated) {
                char rot[96];
                double ry = f->bottom + 10;
                snprintf(rot, sizeof rot, " transform=\"rotate(-45 %.1f %.1f)\"", x + 3, ry);
                text_at(b, x + 3, ry, "end", TICK_FONT, rot, buf);
            } else {
                text_at(b, x, ty, "middle", TICK_FONT, NULL, buf);
            }
        }
    } else {
        for (int i = 0; i < f->x.nticks; i++) {
            double x = map_x(f, f->x.ticks[i]);
            pare_strbuf_printf(
                b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", x,
                f->bottom, x, f->bottom + 4);
            text_at(b, x, ty, "middle", TICK_FONT, NULL, f->x.labels[i]);
        }
    }
    pare_strbuf_puts(b, "</g>\n");
}

static void draw_titles(pare_strbuf *b, const chart_panel *p, const frame *f, double x0, double y0,
                        double w, double h)
{
    char buf[512];
    double cx = (f->left + f->right) / 2;
    if (p->title && *p->title) {
        fit_text(p->title, TITLE_FONT, w - 16, buf, sizeof buf);
        /* Centred on the plot unless that pushes it out of the panel. */
        double half = text_width(buf, TITLE_FONT) / 2;
        double tx = fmin(fmax(cx, x0 + 8 + half), x0 + w - 8 - half);
        text_at(b, tx, y0 + 20, "middle", TITLE_FONT, " font-weight=\"bold\"", buf);
    }
    if (p->xlabel && *p->xlabel) {
        fit_text(p->xlabel, LABEL_FONT, f->right - f->left, buf, sizeof buf);
        text_at(b, cx, y0 + h - 10, "middle", LABEL_FONT, NULL, buf);
    }
    if (p->ylabel && *p->ylabel) {
        char rot[96];
        double x = x0 + 8 + LABEL_FONT, y = (f->top + f->bottom) / 2;
        fit_text(p->ylabel, LABEL_FONT, f->bottom - f->top, buf, sizeof buf);
        snprintf(rot, sizeof rot, " transform=\"rotate(-90 %.1f %.1f)\"", x, y);
        text_at(b, x, y, "middle", LABEL_FONT, rot, buf);
    }
}

/* Left edge and width of bar i of bar series k (of nbars). */
static void bar_box(const frame *f, int k, double xv, double *bx, double *bw)
{
    double group = 0.8 * f->bar_gap, one = group / f->nbars;
    double x_lo = xv - group / 2 + one * k;
    *bx = map_x(f, x_lo);
    *bw = map_x(f, x_lo + one) - *bx;
}

static void point_title(pare_strbuf *b, const chart_panel *p, const chart_series *s, int i)
{
    char v[40];
    pare_json_format_double(s->y[i], v, sizeof v);
    pare_strbuf_puts(b, "<title>");
    double xv = s->x[i];
    if (xv >= 0 && xv < p->ncats && xv == floor(xv)) {
        pare_strbuf_xml(b, p->cats[(int)xv]);
    } else {
        char xs[40];
        pare_json_format_double(s->x[i], xs, sizeof xs);
        pare_strbuf_puts(b, xs);
    }
    pare_strbuf_puts(b, ": ");
    pare_strbuf_puts(b, v);
    pare_strbuf_puts(b, "</title>");
}

static void draw_bars(pare_strbuf *b, const chart_panel *p, const frame *f, const chart_series *s,
                      int k)
{
    double base = fmin(fmax(0, f->y.lo), f->y.hi);
    double yb = map_y(f, base);
    pare_strbuf_printf(b, "<g class=\"bars\" fill=\"%s\">\n", s->color);
    for (int i = 0; i < s->n; i++) {
        if (!finite_point(s, i))
            continue;
        double bx, bw, y = map_y(f, s->y[i]);
        bar_box(f, k, s->x[i], &bx, &bw);
        pare_strbuf_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\">", bx,
                           fmin(y, yb), bw, fabs(yb - y));
        point_title(b, p, s, i);
        pare_strbuf_puts(b, "</rect>\n");
    }
    pare_strbuf_puts(b, "</g>\n");
}

static void draw_line(pare_strbuf *b, const frame *f, const chart_series *s)
{
    /* One path; a NaN point lifts the pen, so the line breaks there. */
    pare_strbuf_printf(b,
                       "<path class=\"line\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                       "stroke-linejoin=\"round\" stroke-linecap=\"round\" d=\"",
                       s->color);
    int run = 0, first = 1;
    for (int i = 0; i < s->n; i++) {
        if (!finite_point(s, i)) {
            run = 0;
            continue;
        }
        pare_strbuf_printf(b, "%s%c%.1f %.1f", first ? "" : " ", run ? 'L' : 'M', map_x(f, s->x[i]),
                           map_y(f, s->y[i]));
        first = 0;
        run++;
    }
    pare_strbuf_puts(b, "\"/>\n");
    /* A point with no neighbour would be an invisible zero-length line. */
    if (s->style != PARE_CHART_LINE)
        return;
    for (int i = 0; i < s->n; i++) {
        int alone = finite_point(s, i) && (i == 0 || !finite_point(s, i - 1)) &&
                    (i + 1 == s->n || !finite_point(s, i + 1));
        if (alone)
            pare_strbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n",
                               map_x(f, s->x[i]), map_y(f, s->y[i]), s->color);
    }
}

static void draw_markers(pare_strbuf *b, const chart_panel *p, const frame *f,
                         const chart_series *s)
{
    pare_strbuf_printf(b, "<g class=\"markers\" fill=\"%s\" stroke=\"#fff\" stroke-width=\"1\">\n",
                       s->color);
    /* Hover titles on a few thousand points would bloat the file. */
    int titles = s->n <= 2000;
    for (int i = 0; i < s->n; i++) {
        if (!finite_point(s, i))
            continue;
        pare_strbuf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\">", map_x(f, s->x[i]),
                           map_y(f, s->y[i]));
        if (titles)
            point_title(b, p, s, i);
        pare_strbuf_puts(b, "</circle>\n");
    }
    pare_strbuf_puts(b, "</g>\n");
}

/* How much data falls inside a box: points, samples along line segments, and
 * bars (which weigh more, being solid). */
static double coverage(const chart_panel *p, const frame *f, double bx, double by, double bw,
                       double bh)
{
    double hits = 0;
    int k = 0;
    for (int si = 0; si < p->nseries; si++) {
        const chart_series *s = &p->series[si];
        int bars = s->style == PARE_CHART_BARS, lines = s->style <= PARE_CHART_LINE_MARKERS;
        for (int i = 0; i < s->n; i++) {
            if (!finite_point(s, i))
                continue;
            double x = map_x(f, s->x[i]), y = map_y(f, s->y[i]);
            if (bars) {
                double rx, rw, yb = map_y(f, fmin(fmax(0, f->y.lo), f->y.hi));
                bar_box(f, k, s->x[i], &rx, &rw);
                if (rx < bx + bw && rx + rw > bx && fmax(y, yb) > by && fmin(y, yb) < by + bh)
                    hits += 5;
                continue;
            }
            if (x >= bx && x <= bx + bw && y >= by && y <= by + bh)
                hits += 1;
            if (lines && i + 1 < s->n && finite_point(s, i + 1)) {
                double x2 = map_x(f, s->x[i + 1]), y2 = map_y(f, s->y[i + 1]);
                int steps = (int)fmin(200, hypot(x2 - x, y2 - y) / 4);
                for (int t = 1; t < steps; t++) {
                    double sx = x + (x2 - x) * t / steps, sy = y + (y2 - y) * t / steps;
                    if (sx >= bx && sx <= bx + bw && sy >= by && sy <= by + bh)
                        hits += 0.5;
                }
            }
        }
        if (bars)
            k++;
    }
    return hits;
}

static void draw_legend(pare_strbuf *b, const chart_panel *p, const frame *f)
{
    char buf[8][160];
    int n = 0;
    double namew = 0;
    for (int i = 0; i < p->nseries; i++) {
        if (!p->series[i].name[0])
            continue;
        fit_text(p->series[i].name, TICK_FONT, (f->right - f->left) * 0.5, buf[n], sizeof buf[n]);
        namew = fmax(namew, text_width(buf[n], TICK_FONT));
        n++;
    }
    if (n == 0)
        return;
    double row = 16, w = 8 + 22 + 6 + namew + 8, h = 6 + row * n;
    /* Right corners first; the left ones only when they are clearly emptier. */
    double xs[4] = {f->right - 8 - w, f->right - 8 - w, f->left + 8, f->left + 8};
    double ys[4] = {f->top + 8, f->bottom - 8 - h, f->top + 8, f->bottom - 8 - h};
    int best = 0;
    double best_hits = INFINITY;
    for (int c = 0; c < 4; c++) {
        double hits = coverage(p, f, xs[c], ys[c], w, h) + (c >= 2 ? 0.5 : 0);
        if (hits < best_hits) {
            best_hits = hits;
            best = c;
        }
    }
    double lx = xs[best], ly = ys[best];
    pare_strbuf_printf(b,
                       "<g class=\"legend\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
                       "height=\"%.1f\" rx=\"3\" fill=\"#fff\" fill-opacity=\"0.88\" "
                       "stroke=\"#ccc\"/>\n",
                       lx, ly, w, h);
    int k = 0;
    for (int i = 0; i < p->nseries; i++) {
        const chart_series *s = &p->series[i];
        if (!s->name[0])
            continue;
        double cy = ly + 3 + row * k + row / 2, sx = lx + 8;
        if (s->style == PARE_CHART_BARS)
            pare_strbuf_printf(
                b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"22\" height=\"9\" fill=\"%s\"/>\n", sx,
                cy - 4.5, s->color);
        if (s->style == PARE_CHART_LINE || s->style == PARE_CHART_LINE_MARKERS)
            pare_strbuf_printf(
                b,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"/>\n",
                sx, cy, sx + 22, cy, s->color);
        if (s->style == PARE_CHART_LINE_MARKERS || s->style == PARE_CHART_MARKERS)
            pare_strbuf_printf(
                b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"#fff\"/>\n",
                sx + 11, cy, s->color);
        text_at(b, sx + 28, cy + TICK_FONT * 0.35, "start", TICK_FONT, NULL, buf[k]);
        k++;
    }
    pare_strbuf_puts(b, "</g>\n");
}

static void draw_panel(pare_strbuf *b, const chart_panel *p, int index, double x0, double y0,
                       double w, double h)
{
    frame f;
    memset(&f, 0, sizeof f);
    layout(p, x0, y0, w, h, &f);
    pare_strbuf_printf(b,
                       "<g class=\"panel\">\n<clipPath id=\"plot%d\"><rect x=\"%.1f\" y=\"%.1f\" "
                       "width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
                       index, f.left, f.top, f.right - f.left, f.bottom - f.top);
    draw_axes(b, p, &f);
    pare_strbuf_printf(b, "<g clip-path=\"url(#plot%d)\">\n", index);
    /* Bars underneath, lines and markers over them. */
    int k = 0;
    for (int i = 0; i < p->nseries; i++)
        if (p->series[i].style == PARE_CHART_BARS)
            draw_bars(b, p, &f, &p->series[i], k++);
    for (int i = 0; i < p->nseries; i++) {
        const chart_series *s = &p->series[i];
        if (s->style == PARE_CHART_LINE || s->style == PARE_CHART_LINE_MARKERS)
            draw_line(b, &f, s);
        if (s->style == PARE_CHART_LINE_MARKERS || s->style == PARE_CHART_MARKERS)
            draw_markers(b, p, &f, s);
    }
    pare_strbuf_puts(b, "</g>\n");
    draw_titles(b, p, &f, x0, y0, w, h);
    draw_legend(b, p, &f);
    pare_strbuf_puts(b, "</g>\n");
}

pare_status pare_chart_render_svg(const pare_chart *c, char **svg, size_t *len)
{
    pare_strbuf b = {0};
    *svg = NULL;
    *len = 0;
    pare_strbuf_printf(&b,
                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                       "viewBox=\"0 0 %d %d\" font-family=\"%s\" fill=\"#222\">\n"
                       "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n",
                       c->width, c->height, c->width, c->height, FONT, c->width, c->height);
    double top = 0;
    if (c->title && *c->title) {
        char buf[512];
        fit_text(c->title, CHART_TITLE_FONT, c->width - 16, buf, sizeof buf);
        text_at(&b, c->width / 2.0, 24, "middle", CHART_TITLE_FONT, " font-weight=\"bold\"", buf);
        top = 32;
    }
    double pw = (double)c->width / c->npanels;
    for (int i = 0; i < c->npanels; i++)
        draw_panel(&b, &c->panels[i], i, pw * i, top, pw, c->height - top);
    pare_strbuf_puts(&b, "</svg>\n");
    if (b.oom) {
        pare_strbuf_release(&b);
        return pare_fail(PARE_ENOMEM, "out of memory rendering a chart");
    }
    *svg = b.p;
    *len = b.len;
    return PARE_OK;
}

pare_status pare_chart_write_svg(const pare_chart *c, const char *path)
{
    char *svg;
    size_t len;
    pare_status s = pare_chart_render_svg(c, &svg, &len);
    if (s)
        return s;
    s = pare_write_file_atomic(path, svg, len);
    free(svg);
    return s;
}
