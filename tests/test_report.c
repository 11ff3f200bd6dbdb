/* Tests of the reporting layer: exact text of tables, JSON and the progress
 * bar, and SVG charts that are well-formed and show what they were given. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsio.h"
#include "report/report.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------- */

/* A stream into memory; memstream_text() flushes and returns what it holds. */
typedef struct memstream {
    FILE *f;
    char *buf;
    size_t len;
} memstream;

static void memstream_open(memstream *m)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
}

static const char *memstream_text(memstream *m)
{
    fflush(m->f);
    return m->buf ? m->buf : "";
}

static void memstream_close(memstream *m)
{
    fclose(m->f);
    free(m->buf);
}

static int tool_exists(const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* A strict JSON checker (RFC 8259 grammar): returns the position after one
 * value, or NULL. */
static const char *json_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

static const char *json_value(const char *s, int depth);

static const char *json_string(const char *s)
{
    if (*s++ != '"')
        return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*s++;
        if (c == '"')
            return s;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            c = (unsigned char)*s++;
            if (c == 'u') {
                for (int i = 0; i < 4; i++, s++)
                    if (!strchr("0123456789abcdefABCDEF", *s) || !*s)
                        return NULL;
            } else if (!c || !strchr("\"\\/bfnrt", c)) {
                return NULL;
            }
        }
    }
}

static const char *json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return NULL;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return NULL;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return NULL;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return s;
}

static const char *json_container(const char *s, int depth, char close, int keyed)
{
    s = json_ws(s + 1);
    if (*s == close)
        return s + 1;
    for (;;) {
        if (keyed) {
            s = json_string(s);
            if (!s)
                return NULL;
            s = json_ws(s);
            if (*s++ != ':')
                return NULL;
        }
        s = json_value(s, depth + 1);
        if (!s)
            return NULL;
        s = json_ws(s);
        if (*s == close)
            return s + 1;
        if (*s++ != ',')
            return NULL;
        s = json_ws(s);
    }
}

static const char *json_value(const char *s, int depth)
{
    if (depth > 100)
        return NULL;
    s = json_ws(s);
    switch (*s) {
    case '{':
        return json_container(s, depth, '}', 1);
    case '[':
        return json_container(s, depth, ']', 0);
    case '"':
        return json_string(s);
    case 't':
        return strncmp(s, "true", 4) ? NULL : s + 4;
    case 'f':
        return strncmp(s, "false", 5) ? NULL : s + 5;
    case 'n':
        return strncmp(s, "null", 4) ? NULL : s + 4;
    default:
        return json_number(s);
    }
}

/* Every line of text is one valid JSON value. */
static int json_lines_valid(const char *text)
{
    const char *s = text;
    while (*s) {
        const char *end = json_value(s, 0);
        if (!end || *end != '\n')
            return 0;
        s = end + 1;
    }
    return 1;
}

/* ---- formatting ---------------------------------------------------------- */

PARE_TEST(report_format_duration_count)
{
    char b[32];
    struct {
        double v;
        const char *want;
    } dur[] = {{0, "0:00"},  {27, "0:27"},   {27.4, "0:27"},    {59.6, "1:00"},
               {62, "1:02"}, {725, "12:05"}, {3723, "1:02:03"}, {36000, "10:00:00"},
               {-1, "-:--"}, {NAN, "-:--"},  {INFINITY, "-:--"}};
    for (size_t i = 0; i < sizeof dur / sizeof dur[0]; i++) {
        pare_format_duration(dur[i].v, b, sizeof b);
        CHECKF(!strcmp(b, dur[i].want), "duration %g -> \"%s\", wanted \"%s\"", dur[i].v, b,
               dur[i].want);
    }
    struct {
        double v;
        const char *want;
    } cnt[] = {{0, "0"},
               {7, "7"},
               {999, "999"},
               {1000, "1,000"},
               {1083, "1,083"},
               {1083.4, "1,083"},
               {60000, "60,000"},
               {999.6, "1,000"},
               {-1234567, "-1,234,567"},
               {1e9, "1,000,000,000"},
               {2.5, "2.5"},
               {45.34, "45.3"},
               {NAN, "-"}};
    for (size_t i = 0; i < sizeof cnt / sizeof cnt[0]; i++) {
        pare_format_count(cnt[i].v, b, sizeof b);
        CHECKF(!strcmp(b, cnt[i].want), "count %g -> \"%s\", wanted \"%s\"", cnt[i].v, b,
               cnt[i].want);
    }
    /* A short buffer cuts, never overflows. */
    pare_format_count(1234567, b, 4);
    CHECK(!strcmp(b, "1,2"));
}

/* ---- tables -------------------------------------------------------------- */

PARE_TEST(report_table_ascii)
{
    const char *headers[] = {"layer", "params", "sparsity"};
    pare_table *t = pare_table_new(3, headers, "lrr");
    CHECK(t != NULL);
    if (!t)
        return;
    const char *row[] = {"conv1", "864", "50.0%"};
    CHECK_OK(pare_table_row(t, row));
    CHECK_OK(pare_table_rowf(t, "fc\t%s\t%.1f%%", "7,850", 90.0));
    CHECK_OK(pare_table_separator(t));
    /* Fewer cells than columns: the rest are empty, and no line ends in blanks. */
    CHECK_OK(pare_table_rowf(t, "total\t%s", "8,714"));
    CHECK_STATUS(pare_table_rowf(t, "a\tb\tc\td"), PARE_EINVAL);

    memstream m;
    memstream_open(&m);
    pare_table_print(t, m.f);
    const char *want = "layer  params  sparsity\n"
                       "-----  ------  --------\n"
                       "conv1     864     50.0%\n"
                       "fc      7,850     90.0%\n"
                       "-----  ------  --------\n"
                       "total   8,714\n";
    const char *got = memstream_text(&m);
    CHECKF(!strcmp(got, want), "table:\n%s---- wanted:\n%s", got, want);
    memstream_close(&m);
    pare_table_free(t);
}

PARE_TEST(report_table_utf8)
{
    /* "×" and "—" are two and three bytes but one column each. */
    const char *headers[] = {"op", "shape", "note"};
    pare_table *t = pare_table_new(3, headers, "lrc");
    CHECK(t != NULL);
    if (!t)
        return;
    const char *r1[] = {"conv ×2", "3×3", "ok"};
    const char *r2[] = {"—", "1×1×64", "é"};
    const char *r3[] = {"fc", "10", NULL};
    CHECK_OK(pare_table_row(t, r1));
    CHECK_OK(pare_table_row(t, r2));
    CHECK_OK(pare_table_row(t, r3));
    memstream m;
    memstream_open(&m);
    pare_table_print(t, m.f);
    const char *want = "op        shape  note\n"
                       "-------  ------  ----\n"
                       "conv ×2     3×3   ok\n"
                       "—        1×1×64   é\n"
                       "fc           10\n";
    const char *got = memstream_text(&m);
    CHECKF(!strcmp(got, want), "table:\n%s---- wanted:\n%s", got, want);
    memstream_close(&m);
    pare_table_free(t);

    /* No header: no rule either. */
    t = pare_table_new(2, NULL, "rl");
    CHECK_OK(pare_table_rowf(t, "%d\t%s", 5, "five"));
    CHECK_OK(pare_table_rowf(t, "%d\t%s", 12, "twelve"));
    memstream_open(&m);
    pare_table_print(t, m.f);
    got = memstream_text(&m);
    CHECKF(!strcmp(got, " 5  five\n12  twelve\n"), "table:\n%s", got);
    memstream_close(&m);
    pare_table_free(t);

    CHECK(pare_table_new(0, NULL, NULL) == NULL);
    CHECK(strstr(pare_last_error(), "columns") != NULL);
}

/* ---- JSON ---------------------------------------------------------------- */

PARE_TEST(report_json_numbers)
{
    char b[40];
    struct {
        double v;
        const char *want;
    } cases[] = {
        {0.1, "0.1"},
        {1e-7, "1e-07"},
        {100, "100"},
        {-2.5, "-2.5"},
        {1.0 / 3, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e21, "1e+21"},
        {123456789012, "123456789012"},
        {5e-324, "4.94065645841247e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {NAN, "null"},
        {INFINITY, "null"},
        {-INFINITY, "null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pare_json_format_double(cases[i].v, b, sizeof b);
        CHECKF(!strcmp(b, cases[i].want), "%.17g -> \"%s\", wanted \"%s\"", cases[i].v, b,
               cases[i].want);
    }
    /* Any double reads back exactly. */
    uint64_t state = 88172645463325252ull;
    for (int i = 0; i < 20000; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        double v;
        memcpy(&v, &state, sizeof v);
        if (!isfinite(v))
            continue;
        pare_json_format_double(v, b, sizeof b);
        if (strtod(b, NULL) != v) {
            CHECKF(0, "%.17g printed as %s does not read back", v, b);
            break;
        }
    }
}

PARE_TEST(report_json_compact)
{
    memstream m;
    memstream_open(&m);
    pare_json *j = pare_json_new(m.f, 0);
    CHECK_OK(pare_json_begin_object(j));
    CHECK_OK(pare_json_kv_string(j, "name",
                                 "a\"b\\c\nd\x01"
                                 "e\t/"));
    CHECK_OK(pare_json_kv_int(j, "n", -42));
    CHECK_OK(pare_json_kv_int(j, "big", INT64_MIN));
    CHECK_OK(pare_json_kv_double(j, "x", 0.1));
    CHECK_OK(pare_json_kv_double(j, "tiny", 1e-7));
    CHECK_OK(pare_json_kv_double(j, "nan", NAN));
    CHECK_OK(pare_json_kv_float(j, "loss", 0.4123f));
    CHECK_OK(pare_json_kv_float(j, "third", 1.0f / 3));
    CHECK_OK(pare_json_kv_bool(j, "ok", 1));
    CHECK_OK(pare_json_kv_string(j, "utf8", "×—é"));
    CHECK_OK(pare_json_kv_string(j, "bad", "\xff\xc0\xaf!"));
    CHECK_OK(pare_json_key(j, "list"));
    CHECK_OK(pare_json_begin_array(j));
    CHECK_OK(pare_json_int(j, 1));
    CHECK_OK(pare_json_null(j));
    CHECK_OK(pare_json_string(j, NULL));
    CHECK_OK(pare_json_begin_object(j));
    CHECK_OK(pare_json_end_object(j));
    CHECK_OK(pare_json_begin_array(j));
    CHECK_OK(pare_json_end_array(j));
    CHECK_OK(pare_json_bool(j, 0));
    CHECK_OK(pare_json_end_array(j));
    CHECK_OK(pare_json_end_object(j));
    /* A second top-level value goes on its own line: JSON Lines. */
    CHECK_OK(pare_json_begin_array(j));
    CHECK_OK(pare_json_double(j, 2.5));
    CHECK_OK(pare_json_end_array(j));
    CHECK_OK(pare_json_status(j));
    const char *want =
        "{\"name\":\"a\\\"b\\\\c\\nd\\u0001e\\t/\",\"n\":-42,\"big\":-9223372036854775808,"
        "\"x\":0.1,\"tiny\":1e-07,\"nan\":null,\"loss\":0.4123,\"third\":0.33333334,"
        "\"ok\":true,\"utf8\":\"×—é\",\"bad\":\"\\ufffd\\ufffd\\ufffd!\","
        "\"list\":[1,null,null,{},[],false]}\n"
        "[2.5]\n";
    const char *got = memstream_text(&m);
    CHECKF(!strcmp(got, want), "JSON:\n%s---- wanted:\n%s", got, want);
    CHECK(json_lines_valid(got));
    /* Python's parser as a second opinion, where there is one. */
    if (tool_exists("python3")) {
        FILE *py = popen("python3 -c 'import json,sys\n"
                         "for l in sys.stdin: json.loads(l)'",
                         "w");
        CHECK(py != NULL);
        if (py) {
            fputs(got, py);
            CHECK(pclose(py) == 0);
        }
    }
    pare_json_free(j);
    memstream_close(&m);
}

PARE_TEST(report_json_pretty)
{
    memstream m;
    memstream_open(&m);
    pare_json *j = pare_json_new(m.f, 1);
    pare_json_begin_object(j);
    pare_json_kv_int(j, "a", 1);
    pare_json_key(j, "b");
    pare_json_begin_array(j);
    pare_json_int(j, 1);
    pare_json_int(j, 2);
    pare_json_end_array(j);
    pare_json_key(j, "c");
    pare_json_begin_object(j);
    pare_json_end_object(j);
    pare_json_end_object(j);
    CHECK_OK(pare_json_status(j));
    const char *want = "{\n"
                       "  \"a\": 1,\n"
                       "  \"b\": [\n"
                       "    1,\n"
                       "    2\n"
                       "  ],\n"
                       "  \"c\": {}\n"
                       "}\n";
    const char *got = memstream_text(&m);
    CHECKF(!strcmp(got, want), "JSON:\n%s---- wanted:\n%s", got, want);
    CHECK(json_value(got, 0) != NULL);
    pare_json_free(j);
    memstream_close(&m);
}

PARE_TEST(report_json_misuse)
{
    memstream m;
    memstream_open(&m);
    pare_json *j = pare_json_new(m.f, 0);
    CHECK_STATUS(pare_json_key(j, "top"), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "key outside an object") != NULL);
    pare_json_free(j);

    j = pare_json_new(m.f, 0);
    pare_json_begin_object(j);
    CHECK_STATUS(pare_json_int(j, 1), PARE_EINVAL);
    /* The first error sticks. */
    CHECK_STATUS(pare_json_kv_int(j, "a", 1), PARE_EINVAL);
    CHECK_STATUS(pare_json_status(j), PARE_EINVAL);
    pare_json_free(j);

    j = pare_json_new(m.f, 0);
    pare_json_begin_object(j);
    CHECK_STATUS(pare_json_end_array(j), PARE_EINVAL);
    pare_json_free(j);

    j = pare_json_new(m.f, 0);
    pare_json_begin_object(j);
    pare_json_key(j, "a");
    CHECK_STATUS(pare_json_end_object(j), PARE_EINVAL);
    pare_json_free(j);

    j = pare_json_new(m.f, 0);
    for (int i = 0; i < 64; i++)
        CHECK_OK(pare_json_begin_array(j));
    CHECK_STATUS(pare_json_begin_array(j), PARE_EINVAL);
    pare_json_free(j);
    memstream_close(&m);
}

/* ---- progress ------------------------------------------------------------ */

/* Checks every redraw ("\r" text "\033[K") fits in cols - 1 code points. */
static void check_redraw_widths(const char *out, int cols)
{
    const char *s = out;
    int draws = 0;
    while ((s = strchr(s, '\r'))) {
        const char *end = strstr(s, "\033[K");
        CHECK(end != NULL);
        if (!end)
            return;
        int w = 0;
        for (const char *q = s + 1; q < end; q++)
            w += ((unsigned char)*q & 0xC0) != 0x80;
        CHECKF(w <= cols - 1, "a %d-column line in a %d-column terminal: %.*s", w, cols,
               (int)(end - s - 1), s + 1);
        CHECK(memchr(s + 1, '\n', (size_t)(end - s - 1)) == NULL);
        s = end;
        draws++;
    }
    CHECK(draws > 0);
}

PARE_TEST(report_progress_plain)
{
    memstream m;
    memstream_open(&m);
    pare_progress *p = pare_progress_new(m.f, 0);
    for (long i = 0; i <= 469; i++)
        pare_progress_update(p, "epoch 1/3", i, 469, "loss 0.5");
    CHECK(!strcmp(memstream_text(&m), ""));
    pare_progress_line(p, "epoch %d  loss %.4f  acc %.2f%%", 1, 0.4123, 91.5);
    CHECK(!strcmp(memstream_text(&m), "epoch 1  loss 0.4123  acc 91.50%\n"));
    pare_progress_done(p);
    /* A line that ends in a newline gets no second one. */
    pare_progress_line(p, "%s\n", "done");
    const char *got = memstream_text(&m);
    CHECKF(!strcmp(got, "epoch 1  loss 0.4123  acc 91.50%\ndone\n"), "got \"%s\"", got);
    pare_progress_free(p);
    memstream_close(&m);
}

PARE_TEST(report_progress_tty)
{
    memstream m;
    memstream_open(&m);
    pare_progress *p = pare_progress_new(m.f, 1);
    /* A memory stream has no terminal size: 80 columns. The first update of
     * a label starts its clock, so the ETA is exactly 0:00. */
    pare_progress_update(p, "epoch 1/3", 244, 469, "loss 0.4123");
    char want[200];
    snprintf(want, sizeof want,
             "\repoch 1/3 [%.15s%.14s]   52%%  244/469  ETA 0:00  loss 0.4123\033[K",
             "###############", "--------------");
    const char *got = memstream_text(&m);
    CHECKF(!strcmp(got, want), "got \"%s\"", got);
    check_redraw_widths(got, 80);

    /* A line clears the bar, prints, and the bar comes back on the next update. */
    size_t before = strlen(got);
    pare_progress_line(p, "note %d", 7);
    got = memstream_text(&m);
    CHECK(!strcmp(got + before, "\r\033[Knote 7\n"));
    before = strlen(got);
    pare_progress_update(p, "epoch 1/3", 245, 469, "loss 0.4100");
    got = memstream_text(&m);
    CHECK(got[before] == '\r' && strstr(got + before, "245/469") != NULL);

    /* The last state is drawn by done() even if the rate limit skipped it. */
    pare_progress_update(p, "epoch 1/3", 300, 469, NULL);
    pare_progress_done(p);
    got = memstream_text(&m);
    const char *last = strrchr(got, '\r');
    CHECK(last && strstr(last, "300/469") && !strcmp(got + strlen(got) - 4, "\033[K\n"));

    /* Finished: the elapsed time instead of an ETA; unknown total: no bar. */
    pare_progress_update(p, "eval", 10000, 10000, NULL);
    got = memstream_text(&m);
    CHECK(strstr(got, "100%  10,000/10,000  time 0:00") != NULL);
    pare_progress_done(p);
    before = strlen(memstream_text(&m));
    pare_progress_update(p, "scan", 5000, 0, NULL);
    got = memstream_text(&m);
    CHECKF(!strcmp(got + before, "\rscan  5,000  time 0:00\033[K"), "got \"%s\"", got + before);
    pare_progress_free(p);
    got = memstream_text(&m);
    CHECK(got[strlen(got) - 1] == '\n');
    memstream_close(&m);

    /* Narrow and wide terminals, a UTF-8 label and a long extra: never wraps. */
    int widths[] = {10, 20, 30, 45, 60, 120, 300};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++) {
        memstream_open(&m);
        p = pare_progress_new(m.f, 1);
        pare_progress_set_width(p, widths[w]);
        pare_progress_update(p, "époque 2/3 ×", 1234, 60000,
                             "12,345 img/s  loss 0.4123  acc 91.2%  lr 0.001");
        pare_progress_update(p, "époque 2/3 ×", 60000, 60000, "done — ok");
        pare_progress_done(p);
        got = memstream_text(&m);
        check_redraw_widths(got, widths[w]);
        if (widths[w] >= 60)
            CHECKF(strstr(got, "[") && strstr(got, "100%"), "width %d: %s", widths[w], got);
        pare_progress_free(p);
        memstream_close(&m);
    }
}

/* ---- SVG ----------------------------------------------------------------- */

/* Start and end tags pair up (when xmllint is missing). */
static int xml_tags_balanced(const char *s)
{
    char stack[64][32];
    int depth = 0;
    while ((s = strchr(s, '<'))) {
        if (s[1] == '?' || s[1] == '!') {
            s = strchr(s, '>');
            if (!s)
                return 0;
            continue;
        }
        int closing = s[1] == '/';
        const char *name = s + 1 + closing;
        size_t n = strcspn(name, " \t\n/>");
        const char *end = strchr(name, '>');
        if (!end || n == 0 || n >= sizeof stack[0])
            return 0;
        int self = end[-1] == '/';
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != n || strncmp(stack[depth - 1], name, n))
                return 0;
            depth--;
        } else if (!self) {
            if (depth == 64)
                return 0;
            memcpy(stack[depth], name, n);
            stack[depth++][n] = 0;
        }
        s = end + 1;
    }
    return depth == 0;
}

/* The d attribute of the n-th path with class="line". */
static int line_path_moves(const char *svg, int nth)
{
    const char *s = svg;
    for (int i = 0; i <= nth; i++) {
        s = strstr(s, "class=\"line\"");
        if (!s)
            return -1;
        s++;
    }
    const char *d = strstr(s, " d=\"");
    if (!d)
        return -1;
    int moves = 0;
    for (d += 4; *d && *d != '"'; d++)
        moves += *d == 'M';
    return moves;
}

PARE_TEST(report_svg_chart)
{
    double x[10], loss[10], test[10];
    for (int i = 0; i < 10; i++) {
        x[i] = i + 1;
        loss[i] = 2.0 / (i + 1);
        test[i] = 2.2 / (i + 1);
    }
    loss[4] = NAN;
    pare_chart *c = pare_chart_new(2, 0, 0);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_OK(pare_chart_title(c, "mlp & friends"));
    CHECK_OK(pare_chart_panel(c, 0, "Loss", "epoch", "loss"));
    CHECK_OK(pare_chart_series(c, 0, "train loss", PARE_CHART_LINE, x, loss, 10));
    CHECK_OK(pare_chart_series(c, 0, "test <loss>", PARE_CHART_LINE_MARKERS, x, test, 10));
    CHECK_OK(pare_chart_series_color(c, 0, "#a1b2c3"));
    const char *layers[] = {"conv1", "layer1.0.conv1", "fc & out"};
    double sparsity[] = {0.25, 0.5, 0.9};
    CHECK_OK(pare_chart_panel(c, 1, "Sparsity per layer", "layer", "sparsity"));
    CHECK_OK(pare_chart_categories(c, 1, layers, 3));
    CHECK_OK(pare_chart_series(c, 1, "magnitude", PARE_CHART_BARS, NULL, sparsity, 3));
    CHECK_OK(pare_chart_series(c, 1, "marks", PARE_CHART_MARKERS, NULL, sparsity, 3));
    CHECK_OK(pare_chart_yrange(c, 1, 0, 1));

    /* Bad calls say why and leave the chart usable. */
    CHECK_STATUS(pare_chart_panel(c, 2, "x", NULL, NULL), PARE_EINVAL);
    CHECK(strstr(pare_last_error(), "panel 2") != NULL);
    CHECK_STATUS(pare_chart_yrange(c, 0, 1, 1), PARE_EINVAL);
    CHECK_STATUS(pare_chart_series_color(c, 0, "red\"/>"), PARE_EINVAL);
    CHECK_STATUS(pare_chart_series(c, 0, "neg", PARE_CHART_LINE, x, loss, -1), PARE_EINVAL);
    CHECK(pare_chart_new(5, 0, 0) == NULL);

    const char *path = pare_test_path("chart.svg");
    CHECK_OK(pare_chart_write_svg(c, path));
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(pare_read_file(path, 1 << 24, &data, &len));
    const char *svg = (const char *)data;
    if (!svg)
        goto out;
    CHECK(strncmp(svg, "<?xml", 5) == 0 &&
          strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(xml_tags_balanced(svg));
    if (tool_exists("xmllint")) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
        CHECK(system(cmd) == 0);
    }
    /* Names, escaped, and tick labels. */
    CHECK(strstr(svg, ">mlp &amp; friends</text>") != NULL);
    CHECK(strstr(svg, ">train loss</text>") != NULL);
    CHECK(strstr(svg, ">test &lt;loss&gt;</text>") != NULL);
    CHECK(strstr(svg, ">fc &amp; out</text>") != NULL);
    CHECK(strstr(svg, ">layer1.0.conv1</text>") != NULL);
    CHECK(strstr(svg, ">0.5</text>") != NULL);
    CHECK(strstr(svg, ">10</text>") != NULL);
    CHECK(strstr(svg, "stroke=\"#a1b2c3\"") != NULL);
    CHECK(strstr(svg, "<title>fc &amp; out: 0.9</title>") != NULL);
    /* The NaN at point 5 splits the train line into two pieces; the test
     * line is whole. */
    CHECKF(line_path_moves(svg, 0) == 2, "train line has %d pieces", line_path_moves(svg, 0));
    CHECK(line_path_moves(svg, 1) == 1);
    /* Three bars, each with its hover title. */
    const char *bars = strstr(svg, "class=\"bars\"");
    int rects = 0;
    for (const char *s = bars; s && (s = strstr(s, "<rect ")) && s < strstr(bars, "</g>"); s++)
        rects++;
    CHECK(rects == 3);
    CHECK(strstr(svg, "class=\"legend\"") != NULL);

out:
    free(data);
    /* A missing folder: an I/O error that names the path. */
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/no/such/folder/chart.svg", pare_test_dir());
    CHECK_STATUS(pare_chart_write_svg(c, missing), PARE_EIO);
    CHECKF(strstr(pare_last_error(), missing) != NULL, "error: %s", pare_last_error());
    pare_chart_free(c);
}

PARE_TEST(report_svg_ticks)
{
    /* Compact tick labels at three scales, and a panel with no data. */
    double x[2] = {0, 1}, big[2] = {0, 60000}, mid[2] = {0, 3000}, tiny[2] = {0, 2e-5};
    pare_chart *c = pare_chart_new(4, 0, 0);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_OK(pare_chart_series(c, 0, "big", PARE_CHART_LINE, x, big, 2));
    CHECK_OK(pare_chart_series(c, 1, "mid", PARE_CHART_LINE, x, mid, 2));
    CHECK_OK(pare_chart_series(c, 2, "tiny", PARE_CHART_LINE, x, tiny, 2));
    for (int i = 0; i < PARE_CHART_MAX_SERIES; i++)
        CHECK_OK(pare_chart_series(c, 3, NULL, PARE_CHART_MARKERS, NULL, NULL, 0));
    CHECK_STATUS(pare_chart_series(c, 3, "ninth", PARE_CHART_LINE, NULL, NULL, 0), PARE_EINVAL);
    char *svg = NULL;
    size_t len = 0;
    CHECK_OK(pare_chart_render_svg(c, &svg, &len));
    if (svg) {
        CHECK(strlen(svg) == len);
        CHECK(xml_tags_balanced(svg));
        CHECK(strstr(svg, ">60k</text>") != NULL);
        CHECK(strstr(svg, ">1.5k</text>") != NULL);
        CHECK(strstr(svg, ">2e-05</text>") != NULL);
        CHECK(strstr(svg, ">0.25</text>") != NULL || strstr(svg, ">0.2</text>") != NULL);
    }
    free(svg);
    pare_chart_free(c);
}
