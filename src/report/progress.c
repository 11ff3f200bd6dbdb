/* A one-line progress bar for long loops, redrawn in place on a terminal, and
 * the duration and count formats it shares with the rest of the reports. */
#include "report/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "core/clock.h"
#include "report/text.h"

#define BAR_MIN 8
#define BAR_MAX 40
/* Redrawing more often than a person can read only costs time in the loop. */
#define REDRAW_SECONDS 0.1

struct pare_progress {
    FILE *f;
    int tty;
    int cols;      /* fixed width; 0: ask the terminal */
    int on_screen; /* a bar is drawn and the cursor sits after it */
    int pending;   /* the last update was skipped by the rate limit */
    int active;    /* a label is running */
    char label[128];
    char extra[256];
    double t0, last_draw;
    long done, total;
};

void pare_format_duration(double seconds, char *buf, size_t n)
{
    if (n == 0)
        return;
    /* 1e9 s is 30 years: past that an ETA means nothing. */
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(buf, n, "-:--");
        return;
    }
    long s = (long)(seconds + 0.5);
    long h = s / 3600, m = s / 60 % 60, sec = s % 60;
    if (h > 0)
        snprintf(buf, n, "%ld:%02ld:%02ld", h, m, sec);
    else
        snprintf(buf, n, "%ld:%02ld", m, sec);
}

void pare_format_count(double v, char *buf, size_t n)
{
    if (n == 0)
        return;
    if (!isfinite(v)) {
        snprintf(buf, n, "-");
        return;
    }
    if (fabs(v) >= 1e18) {
        snprintf(buf, n, "%.3g", v);
        return;
    }
    double r = round(v);
    if (fabs(v) < 99.95 && r != v) {
        snprintf(buf, n, "%.1f", v);
        return;
    }
    /* Digits right to left into a scratch buffer, a comma every three. */
    char tmp[40];
    size_t i = sizeof tmp;
    unsigned long long u = (unsigned long long)fabs(r);
    int digits = 0;
    tmp[--i] = 0;
    do {
        if (digits > 0 && digits % 3 == 0)
            tmp[--i] = ',';
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
        digits++;
    } while (u);
    if (r < 0)
        tmp[--i] = '-';
    snprintf(buf, n, "%s", tmp + i);
}

static int line_width(const pare_progress *p)
{
    if (p->cols > 0)
        return p->cols;
#ifdef TIOCGWINSZ
    struct winsize ws;
    int fd = fileno(p->f);
    if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
#endif
    return 80;
}

pare_progress *pare_progress_new(FILE *f, int tty)
{
    pare_progress *p = calloc(1, sizeof *p);
    if (!p) {
        pare_fail(PARE_ENOMEM, "out of memory creating a progress bar");
        return NULL;
    }
    p->f = f;
    if (tty < 0) {
        int fd = fileno(f);
        tty = fd >= 0 && isatty(fd);
    }
    p->tty = tty != 0;
    return p;
}

void pare_progress_set_width(pare_progress *p, int cols)
{
    p->cols = cols > 0 ? cols : 0;
}

/* Appends src to dst (size cap) and returns the new length. */
static size_t append(char *dst, size_t len, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (len + n >= cap)
        n = cap - 1 - len;
    memcpy(dst + len, src, n);
    dst[len + n] = 0;
    return len + n;
}

/* Copies src into dst (cap bytes), cutting a long text at a code point
 * boundary so no half character reaches the terminal. */
static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void draw(pare_progress *p, double now)
{
    char tail[512], num[32], num2[32], eta[32], line[1024];
    size_t tl = 0;
    tail[0] = 0;
    long done = p->done < 0 ? 0 : p->done;
    int known = p->total > 0;
    if (known && done > p->total)
        done = p->total;
    double elapsed = now - p->t0;

    if (known) {
        snprintf(num, sizeof num, "  %3d%%", (int)(100.0 * (double)done / (double)p->total));
        tl = append(tail, tl, sizeof tail, num);
    }
    pare_format_count((double)done, num, sizeof num);
    tl = append(tail, tl, sizeof tail, "  ");
    tl = append(tail, tl, sizeof tail, num);
    if (known) {
        pare_format_count((double)p->total, num2, sizeof num2);
        tl = append(tail, tl, sizeof tail, "/");
        tl = append(tail, tl, sizeof tail, num2);
    }
    if (known && done < p->total) {
        double left = done > 0 ? elapsed * (double)(p->total - done) / (double)done : -1;
        pare_format_duration(left, num, sizeof num);
        snprintf(eta, sizeof eta, "  ETA %s", num);
    } else {
        /* Finished or open-ended: the time so far says more than an ETA. */
        pare_format_duration(elapsed, num, sizeof num);
        snprintf(eta, sizeof eta, "  time %s", num);
    }
    tl = append(tail, tl, sizeof tail, eta);
    if (p->extra[0]) {
        tl = append(tail, tl, sizeof tail, "  ");
        tl = append(tail, tl, sizeof tail, p->extra);
    }

    /* One column is kept free: writing the last one makes some terminals wrap. */
    int avail = line_width(p) - 1;
    if (avail < 1)
        avail = 1;
    int head_w = (int)pare_utf8_width(p->label);
    int bar = avail - head_w - (head_w ? 1 : 0) - 2 - (int)pare_utf8_width(tail);
    if (bar > BAR_MAX)
        bar = BAR_MAX;
    size_t len = append(line, 0, sizeof line, p->label);
    if (known && bar >= BAR_MIN) {
        int fill = (int)((double)bar * (double)done / (double)p->total);
        if (head_w)
            len = append(line, len, sizeof line, " ");
        len = append(line, len, sizeof line, "[");
        for (int i = 0; i < bar && len + 2 < sizeof line; i++)
            line[len++] = i < fill ? '#' : '-';
        line[len] = 0;
        len = append(line, len, sizeof line, "]");
    }
    /* Without a label the tail's leading spaces would only indent the line. */
    append(line, len, sizeof line, len ? tail : tail + 2);
    line[pare_utf8_prefix(line, (size_t)avail)] = 0;

    fprintf(p->f, "\r%s\033[K", line);
    fflush(p->f);
    p->on_screen = 1;
    p->pending = 0;
    p->last_draw = now;
}

void pare_progress_update(pare_progress *p, const char *label, long done, long total,
                          const char *extra)
{
    if (!p)
        return;
    double now = pare_now_s();
    if (!label)
        label = "";
    char cut[sizeof p->label];
    copy_text(cut, sizeof cut, label);
    int fresh = !p->active || strcmp(cut, p->label) != 0;
    if (fresh) {
        memcpy(p->label, cut, sizeof cut);
        p->t0 = now;
        p->active = 1;
    }
    p->done = done;
    p->total = total;
    copy_text(p->extra, sizeof p->extra, extra ? extra : "");
    if (!p->tty)
        return;
    int final = total > 0 && done >= total;
    if (!fresh && !final && p->on_screen && now - p->last_draw < REDRAW_SECONDS) {
        p->pending = 1;
        return;
    }
    draw(p, now);
}

void pare_progress_done(pare_progress *p)
{
    if (!p)
        return;
    if (p->tty && p->active && p->pending)
        draw(p, pare_now_s());
    if (p->on_screen) {
        fputc('\n', p->f);
        fflush(p->f);
    }
    p->on_screen = 0;
    p->pending = 0;
    p->active = 0;
}

void pare_progress_line(pare_progress *p, const char *fmt, ...)
{
    if (!p)
        return;
    char small[512], *text = small;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof small) {
        text = malloc((size_t)n + 1);
        if (!text)
            return;
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (p->on_screen)
        fputs("\r\033[K", p->f);
    p->on_screen = 0;
    fputs(text, p->f);
    if (n == 0 || text[n - 1] != '\n')
        fputc('\n', p->f);
    fflush(p->f);
    if (text != small)
        free(text);
}

void pare_progress_free(pare_progress *p)
{
    if (!p)
        return;
    if (p->on_screen) {
        fputc('\n', p->f);
        fflush(p->f);
    }
    free(p);
}
