/* Reporting for the pare command and the benchmarks: a progress bar, aligned
 * text tables, a streaming JSON writer and SVG charts. */
#ifndef PARE_REPORT_H
#define PARE_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "pare.h"

/* ---- number and time formatting ----------------------------------------- */

/* "0:27", "12:05", "1:02:03" (rounded to the second); "-:--" when unknown
 * (negative, NaN or infinite). */
void pare_format_duration(double seconds, char *buf, size_t n);
/* A count with thousands separators: "1,083", "60,000", "-1,234,567".
 * |v| >= 100 is rounded to an integer; smaller values keep one decimal when
 * they have a fraction ("2.5", "45.3"), so slow rates do not show as 0.
 * Non-finite values print as "-". */
void pare_format_count(double v, char *buf, size_t n);

/* ---- progress bar -------------------------------------------------------- */

/* One line for a long loop, e.g.
 *   epoch 1/3 [##########----------]  52%  244/469  ETA 0:27  1,083 img/s  loss 0.4123
 * On a terminal (tty=1) the line is redrawn in place at most ~10 times a
 * second (and always when done reaches total), fits the terminal width and
 * never wraps. Otherwise (tty=0) updates print nothing and only
 * pare_progress_line() writes, so logs and pipes get one clean line per call.
 * tty=-1 asks isatty() on f. */
typedef struct pare_progress pare_progress;

pare_progress *pare_progress_new(FILE *f, int tty);
/* Fixes the line width in columns (0, the default: ask the terminal, 80 when
 * it cannot be asked). */
void pare_progress_set_width(pare_progress *p, int cols);
/* label: what runs ("epoch 1/3"); the clock for the ETA starts at the first
 * update with a label and restarts when the label changes. total <= 0: unknown,
 * no bar, the count and the elapsed time only. extra: the caller's text after
 * the ETA (rate, loss...), may be NULL. */
void pare_progress_update(pare_progress *p, const char *label, long done, long total,
                          const char *extra);
/* Ends the bar: draws its last state if a redraw was skipped, then a newline
 * when something was drawn. The next update starts a new clock. */
void pare_progress_done(pare_progress *p);
/* Prints one whole line (a newline is added unless the text ends with one),
 * first clearing a bar in progress, which comes back on the next update. */
void pare_progress_line(pare_progress *p, const char *fmt, ...) PARE_PRINTF(2, 3);
/* Ends a bar left on screen, then frees. NULL is fine. */
void pare_progress_free(pare_progress *p);

/* ---- text tables --------------------------------------------------------- */

/* Columns padded to their widest cell (counted in code points, so UTF-8 such
 * as "×" or "—" aligns), two spaces apart, a rule of '-' under the header:
 *   layer    params  sparsity
 *   -------  ------  --------
 *   conv1       864     50.0%
 * Cells are single-line text. */
typedef struct pare_table pare_table;

/* headers: ncols strings or NULL (no header and no rule). align: one letter a
 * column, 'l' left, 'r' right, 'c' centre; NULL or a short string: the rest
 * are left. NULL on a bad ncols (1..64) or out of memory. */
pare_table *pare_table_new(int ncols, const char *const *headers, const char *align);
/* Copies ncols cells (a NULL cell is empty). */
pare_status pare_table_row(pare_table *t, const char *const *cells);
/* One row from a format whose result separates cells with '\t'; fewer cells
 * than columns leave the rest empty, more are PARE_EINVAL. */
pare_status pare_table_rowf(pare_table *t, const char *fmt, ...) PARE_PRINTF(2, 3);
/* A rule line between rows (e.g. before a totals row). */
pare_status pare_table_separator(pare_table *t);
void pare_table_print(const pare_table *t, FILE *f);
void pare_table_free(pare_table *t);

/* ---- JSON ---------------------------------------------------------------- */

/* A streaming JSON writer: commas, colons and (pretty=1) indentation are
 * handled; every complete top-level value is followed by a newline, so
 * pretty=0 gives JSON Lines. Strings are escaped (", \, control characters;
 * invalid UTF-8 becomes U+FFFD) and doubles use the shortest text that reads
 * back to the same value; NaN and infinities become null.
 * Misuse (a value in an object without a key, an unbalanced end, nesting
 * deeper than 64) and stream errors stick: later calls do nothing and return
 * the first error, which pare_json_status() also returns. */
typedef struct pare_json pare_json;

pare_json *pare_json_new(FILE *f, int pretty);
pare_status pare_json_begin_object(pare_json *j);
pare_status pare_json_end_object(pare_json *j);
pare_status pare_json_begin_array(pare_json *j);
pare_status pare_json_end_array(pare_json *j);
pare_status pare_json_key(pare_json *j, const char *name);
pare_status pare_json_string(pare_json *j, const char *s); /* NULL writes null */
pare_status pare_json_int(pare_json *j, int64_t v);
pare_status pare_json_double(pare_json *j, double v);
/* Shortest text that reads back as the same float: 0.1f gives 0.1, not
 * 0.100000001490116. For float32 metrics such as the loss. */
pare_status pare_json_float(pare_json *j, float v);
pare_status pare_json_bool(pare_json *j, int v);
pare_status pare_json_null(pare_json *j);
/* Key and value in one call, for flat records. */
pare_status pare_json_kv_string(pare_json *j, const char *name, const char *s);
pare_status pare_json_kv_int(pare_json *j, const char *name, int64_t v);
pare_status pare_json_kv_double(pare_json *j, const char *name, double v);
pare_status pare_json_kv_float(pare_json *j, const char *name, float v);
pare_status pare_json_kv_bool(pare_json *j, const char *name, int v);
/* PARE_OK, or the first error (misuse, or the stream failed). */
pare_status pare_json_status(const pare_json *j);
void pare_json_free(pare_json *j);
/* The text pare_json_double() writes for v ("0.1", "1e-07", "null"). */
void pare_json_format_double(double v, char *buf, size_t n);

/* ---- SVG charts ---------------------------------------------------------- */

/* A standalone SVG file with 1-4 panels side by side. Each panel has a title,
 * axis labels, up to 8 series, a legend in the emptier corner and "nice"
 * ticks. Typical use:
 *
 *   pare_chart *c = pare_chart_new(2, 0, 0);
 *   pare_chart_panel(c, 0, "Loss", "epoch", "loss");
 *   pare_chart_series(c, 0, "train", PARE_CHART_LINE, epochs, train_loss, n);
 *   pare_chart_series(c, 0, "test", PARE_CHART_LINE_MARKERS, epochs, test_loss, n);
 *   pare_chart_panel(c, 1, "Sparsity per layer", "layer", "sparsity");
 *   pare_chart_categories(c, 1, layer_names, nlayers);
 *   pare_chart_series(c, 1, "sparsity", PARE_CHART_BARS, NULL, sparsity, nlayers);
 *   pare_chart_yrange(c, 1, 0, 1);
 *   if (pare_chart_write_svg(c, "run.svg") != PARE_OK) ... pare_last_error() ...
 *   pare_chart_free(c);
 *
 * Builder calls copy what they are given; a bad panel index or a full panel is
 * PARE_EINVAL with a sentence, and the chart stays usable. */
typedef struct pare_chart pare_chart;

typedef enum pare_chart_style {
    PARE_CHART_LINE = 0,     /* NaN or infinite points break the line */
    PARE_CHART_LINE_MARKERS, /* a line with a dot on each point */
    PARE_CHART_MARKERS,      /* dots only */
    PARE_CHART_BARS          /* a bar per point from 0; bar series sit side by side */
} pare_chart_style;

#define PARE_CHART_MAX_PANELS 4
#define PARE_CHART_MAX_SERIES 8

/* width, height: the whole image in pixels; <= 0 picks 460 a panel by 340.
 * NULL on a bad panel count or size, or out of memory. */
pare_chart *pare_chart_new(int panels, int width, int height);
/* A title across the top of the image (optional). */
pare_status pare_chart_title(pare_chart *c, const char *title);
/* Titles of panel i; any may be NULL. */
pare_status pare_chart_panel(pare_chart *c, int panel, const char *title, const char *xlabel,
                             const char *ylabel);
/* Fixes an axis range (lo < hi, finite); by default it covers the data with a
 * small margin (bars always include 0). */
pare_status pare_chart_yrange(pare_chart *c, int panel, double lo, double hi);
pare_status pare_chart_xrange(pare_chart *c, int panel, double lo, double hi);
/* Adds a series of n points. x NULL means 0, 1, ..., n-1 (the category
 * positions). NaN or infinite x or y: the point is skipped. */
pare_status pare_chart_series(pare_chart *c, int panel, const char *name, pare_chart_style style,
                              const double *x, const double *y, int n);
/* Colour of the panel's last added series, "#rgb" or "#rrggbb" (by default
 * the colour-blind-friendly Okabe-Ito palette, in order). */
pare_status pare_chart_series_color(pare_chart *c, int panel, const char *color);
/* Names the x positions 0..n-1 (e.g. layer names): the x axis shows these
 * instead of numbers, rotated when they do not fit side by side. */
pare_status pare_chart_categories(pare_chart *c, int panel, const char *const *labels, int n);
/* The SVG document (NUL-terminated; free with free()). */
pare_status pare_chart_render_svg(const pare_chart *c, char **svg, size_t *len);
/* Renders and writes path atomically; PARE_EIO names the path. */
pare_status pare_chart_write_svg(const pare_chart *c, const char *path);
void pare_chart_free(pare_chart *c);

#endif
