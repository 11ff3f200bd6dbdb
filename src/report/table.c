/* Aligned text tables for the terminal: rows are kept until print, which pads
 * every column to its widest cell, counting code points rather than bytes. */
#include "report/report.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "report/text.h"

#define TABLE_MAX_COLS 64

/* cells NULL: a separator rule. */
typedef struct table_row {
    char **cells;
} table_row;

struct pare_table {
    int ncols;
    char **headers; /* NULL: no header */
    char align[TABLE_MAX_COLS];
    table_row *rows;
    size_t nrows, cap;
};

static void free_cells(char **cells, int n)
{
    if (!cells)
        return;
    for (int i = 0; i < n; i++)
        free(cells[i]);
    free(cells);
}

/* Copies n strings (NULL → ""); NULL when out of memory. */
static char **copy_cells(const char *const *src, int n)
{
    char **c = calloc((size_t)n, sizeof *c);
    if (!c)
        return NULL;
    for (int i = 0; i < n; i++) {
        c[i] = pare_strdup(src[i] ? src[i] : "");
        if (!c[i]) {
            free_cells(c, n);
            return NULL;
        }
    }
    return c;
}

pare_table *pare_table_new(int ncols, const char *const *headers, const char *align)
{
    if (ncols < 1 || ncols > TABLE_MAX_COLS) {
        pare_fail(PARE_EINVAL, "a table needs 1 to %d columns, not %d", TABLE_MAX_COLS, ncols);
        return NULL;
    }
    pare_table *t = calloc(1, sizeof *t);
    if (!t)
        goto fail_oom;
    t->ncols = ncols;
    size_t na = align ? strlen(align) : 0;
    for (int i = 0; i < ncols; i++) {
        char a = (size_t)i < na ? align[i] : 'l';
        t->align[i] = a == 'r' || a == 'c' ? a : 'l';
    }
    if (headers) {
        t->headers = copy_cells(headers, ncols);
        if (!t->headers)
            goto fail_oom;
    }
    return t;

fail_oom:
    free(t);
    pare_fail(PARE_ENOMEM, "out of memory creating a table");
    return NULL;
}

static pare_status push_row(pare_table *t, char **cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        table_row *r = realloc(t->rows, cap * sizeof *r);
        if (!r)
            return pare_fail(PARE_ENOMEM, "out of memory adding a table row");
        t->rows = r;
        t->cap = cap;
    }
    t->rows[t->nrows++].cells = cells;
    return PARE_OK;
}

pare_status pare_table_row(pare_table *t, const char *const *cells)
{
    char **c = copy_cells(cells, t->ncols);
    if (!c)
        return pare_fail(PARE_ENOMEM, "out of memory adding a table row");
    pare_status s = push_row(t, c);
    if (s != PARE_OK)
        free_cells(c, t->ncols);
    return s;
}

pare_status pare_table_rowf(pare_table *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return pare_fail(PARE_EINVAL, "cannot format a table row from \"%s\"", fmt);
    char *text = malloc((size_t)n + 1);
    if (!text)
        return pare_fail(PARE_ENOMEM, "out of memory adding a table row");
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);

    pare_status s = PARE_OK;
    const char *cells[TABLE_MAX_COLS] = {0};
    int k = 0;
    char *field = text;
    for (;;) {
        char *tab = strchr(field, '\t');
        if (tab)
            *tab = 0;
        if (k == t->ncols) {
            s = pare_fail(PARE_EINVAL, "a table row has more than %d tab-separated cells: \"%s\"",
                          t->ncols, fmt);
            goto out;
        }
        cells[k++] = field;
        if (!tab)
            break;
        field = tab + 1;
    }
    s = pare_table_row(t, cells);
out:
    free(text);
    return s;
}

pare_status pare_table_separator(pare_table *t)
{
    return push_row(t, NULL);
}

/* Blanks are held back until text follows, so no line ends in spaces (an
 * empty last cell would otherwise leave its padding behind). */
static void put_text(FILE *f, size_t *blanks, const char *s)
{
    if (!*s)
        return;
    for (; *blanks; --*blanks)
        fputc(' ', f);
    fputs(s, f);
}

static void print_rule(const pare_table *t, const size_t *width, FILE *f)
{
    size_t blanks = 0;
    for (int c = 0; c < t->ncols; c++) {
        if (c)
            blanks += 2;
        for (size_t i = 0; i < width[c]; i++)
            put_text(f, &blanks, "-");
    }
    fputc('\n', f);
}

static void print_cells(const pare_table *t, char *const *cells, const size_t *width, FILE *f)
{
    size_t blanks = 0;
    for (int c = 0; c < t->ncols; c++) {
        size_t pad = width[c] - pare_utf8_width(cells[c]), before = 0;
        if (t->align[c] == 'r')
            before = pad;
        else if (t->align[c] == 'c')
            before = pad / 2;
        if (c)
            blanks += 2;
        blanks += before;
        put_text(f, &blanks, cells[c]);
        blanks += pad - before;
    }
    fputc('\n', f);
}

void pare_table_print(const pare_table *t, FILE *f)
{
    size_t width[TABLE_MAX_COLS] = {0};
    for (int c = 0; c < t->ncols; c++) {
        if (t->headers)
            width[c] = pare_utf8_width(t->headers[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            if (t->rows[r].cells) {
                size_t w = pare_utf8_width(t->rows[r].cells[c]);
                if (w > width[c])
                    width[c] = w;
            }
        }
    }
    if (t->headers) {
        print_cells(t, t->headers, width, f);
        print_rule(t, width, f);
    }
    for (size_t r = 0; r < t->nrows; r++) {
        if (t->rows[r].cells)
            print_cells(t, t->rows[r].cells, width, f);
        else
            print_rule(t, width, f);
    }
}

void pare_table_free(pare_table *t)
{
    if (!t)
        return;
    free_cells(t->headers, t->ncols);
    for (size_t r = 0; r < t->nrows; r++)
        free_cells(t->rows[r].cells, t->ncols);
    free(t->rows);
    free(t);
}
