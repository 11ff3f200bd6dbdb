/* A streaming JSON writer: keeps a stack of open containers so commas, colons
 * and indentation come out right, and writes numbers in their shortest exact
 * form. */
#include "report/report.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/text.h"

#define JSON_MAX_DEPTH 64

typedef struct json_level {
    char kind;   /* '{' or '[' */
    int has_key; /* an object member's key is written, its value is due */
    long count;  /* members or elements so far */
} json_level;

struct pare_json {
    FILE *f;
    int pretty;
    int depth;
    pare_status err;
    json_level stack[JSON_MAX_DEPTH];
};

pare_json *pare_json_new(FILE *f, int pretty)
{
    pare_json *j = calloc(1, sizeof *j);
    if (!j) {
        pare_fail(PARE_ENOMEM, "out of memory creating a JSON writer");
        return NULL;
    }
    j->f = f;
    j->pretty = pretty != 0;
    return j;
}

void pare_json_free(pare_json *j)
{
    free(j);
}

pare_status pare_json_status(const pare_json *j)
{
    if (j->err == PARE_OK && ferror(j->f))
        return pare_fail(PARE_EIO, "writing JSON output failed (disk full or a closed pipe?)");
    return j->err;
}

static pare_status misuse(pare_json *j, const char *what)
{
    j->err = pare_fail(PARE_EINVAL, "JSON writer misuse: %s", what);
    return j->err;
}

static void newline_indent(pare_json *j, int depth)
{
    fputc('\n', j->f);
    for (int i = 0; i < depth; i++)
        fputs("  ", j->f);
}

/* Writes what must come before a value at the current position. */
static pare_status before_value(pare_json *j)
{
    if (j->err)
        return j->err;
    if (j->depth == 0)
        return PARE_OK;
    json_level *l = &j->stack[j->depth - 1];
    if (l->kind == '{') {
        if (!l->has_key)
            return misuse(j, "a value inside an object needs a key first");
        l->has_key = 0;
        return PARE_OK;
    }
    if (l->count++ > 0)
        fputc(',', j->f);
    if (j->pretty)
        newline_indent(j, j->depth);
    return PARE_OK;
}

/* A finished top-level value ends its line: that makes JSON Lines. */
static pare_status after_value(pare_json *j)
{
    if (j->depth > 0)
        return PARE_OK;
    fputc('\n', j->f);
    if (ferror(j->f))
        j->err = pare_fail(PARE_EIO, "writing JSON output failed (disk full or a closed pipe?)");
    return j->err;
}

static void write_string(FILE *f, const char *s)
{
    size_t n = strlen(s);
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = pare_utf8_next(s + i, n - i, &cp);
        if (k == 0) {
            /* Invalid UTF-8 would make the whole document unreadable. */
            fputs("\\ufffd", f);
            i++;
            continue;
        }
        switch (cp) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (cp < 0x20 || cp == 0x7F)
                fprintf(f, "\\u%04x", (unsigned)cp);
            else
                fwrite(s + i, 1, k, f);
        }
        i += k;
    }
    fputc('"', f);
}

static pare_status begin(pare_json *j, char kind)
{
    pare_status s = before_value(j);
    if (s)
        return s;
    if (j->depth == JSON_MAX_DEPTH)
        return misuse(j, "nesting deeper than 64 levels");
    j->stack[j->depth++] = (json_level){kind, 0, 0};
    fputc(kind, j->f);
    return PARE_OK;
}

static pare_status end(pare_json *j, char kind)
{
    if (j->err)
        return j->err;
    json_level *l = j->depth > 0 ? &j->stack[j->depth - 1] : NULL;
    if (!l || l->kind != kind)
        return misuse(j, kind == '{' ? "end_object without an open object"
                                     : "end_array without an open array");
    if (l->has_key)
        return misuse(j, "an object ends after a key without its value");
    j->depth--;
    if (j->pretty && l->count > 0)
        newline_indent(j, j->depth);
    fputc(kind == '{' ? '}' : ']', j->f);
    return after_value(j);
}

pare_status pare_json_begin_object(pare_json *j)
{
    return begin(j, '{');
}
pare_status pare_json_end_object(pare_json *j)
{
    return end(j, '{');
}
pare_status pare_json_begin_array(pare_json *j)
{
    return begin(j, '[');
}
pare_status pare_json_end_array(pare_json *j)
{
    return end(j, '[');
}

pare_status pare_json_key(pare_json *j, const char *name)
{
    if (j->err)
        return j->err;
    json_level *l = j->depth > 0 ? &j->stack[j->depth - 1] : NULL;
    if (!l || l->kind != '{')
        return misuse(j, "a key outside an object");
    if (l->has_key)
        return misuse(j, "two keys in a row");
    if (l->count++ > 0)
        fputc(',', j->f);
    if (j->pretty)
        newline_indent(j, j->depth);
    write_string(j->f, name ? name : "");
    fputs(j->pretty ? ": " : ":", j->f);
    l->has_key = 1;
    return PARE_OK;
}

/* Writes a scalar's text with the bookkeeping around it. */
static pare_status scalar(pare_json *j, const char *text)
{
    pare_status s = before_value(j);
    if (s)
        return s;
    fputs(text, j->f);
    return after_value(j);
}

pare_status pare_json_string(pare_json *j, const char *str)
{
    if (!str)
        return pare_json_null(j);
    pare_status s = before_value(j);
    if (s)
        return s;
    write_string(j->f, str);
    return after_value(j);
}

pare_status pare_json_int(pare_json *j, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return scalar(j, buf);
}

/* printf follows LC_NUMERIC; JSON always wants '.', whatever the caller set. */
static void fix_decimal_point(char *buf)
{
    for (char *p = buf; *p; p++)
        if (*p != '-' && *p != '+' && *p != 'e' && (*p < '0' || *p > '9'))
            *p = '.';
}

void pare_json_format_double(double v, char *buf, size_t n)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "null");
        return;
    }
    /* 17 significant digits always read back exactly; fewer usually do and
     * read better (0.1 rather than 0.10000000000000001). */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            break;
    }
    fix_decimal_point(buf);
}

pare_status pare_json_double(pare_json *j, double v)
{
    char buf[40];
    pare_json_format_double(v, buf, sizeof buf);
    return scalar(j, buf);
}

pare_status pare_json_float(pare_json *j, float v)
{
    char buf[40];
    if (!isfinite(v))
        return scalar(j, "null");
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (prec == 9 || strtof(buf, NULL) == v)
            break;
    }
    fix_decimal_point(buf);
    return scalar(j, buf);
}

pare_status pare_json_bool(pare_json *j, int v)
{
    return scalar(j, v ? "true" : "false");
}
pare_status pare_json_null(pare_json *j)
{
    return scalar(j, "null");
}

pare_status pare_json_kv_string(pare_json *j, const char *name, const char *s)
{
    pare_status st = pare_json_key(j, name);
    return st ? st : pare_json_string(j, s);
}

pare_status pare_json_kv_int(pare_json *j, const char *name, int64_t v)
{
    pare_status st = pare_json_key(j, name);
    return st ? st : pare_json_int(j, v);
}

pare_status pare_json_kv_double(pare_json *j, const char *name, double v)
{
    pare_status st = pare_json_key(j, name);
    return st ? st : pare_json_double(j, v);
}

pare_status pare_json_kv_float(pare_json *j, const char *name, float v)
{
    pare_status st = pare_json_key(j, name);
    return st ? st : pare_json_float(j, v);
}

pare_status pare_json_kv_bool(pare_json *j, const char *name, int v)
{
    pare_status st = pare_json_key(j, name);
    return st ? st : pare_json_bool(j, v);
}
