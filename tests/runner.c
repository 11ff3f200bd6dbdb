/* Runs every test in a child process (a crash fails one test, not the run),
 * -j N at a time, each PARE_TEST_ISA test once per ISA level the machine has,
 * and ends with "N passed, N failed". */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, mkdtemp */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "test.h"

#undef PARE_TEST
#undef PARE_TEST_ISA
#define PARE_TEST(name) void test_##name(void);
#define PARE_TEST_ISA(name) void test_##name(void);
#include "test_list.inc"
#undef PARE_TEST
#undef PARE_TEST_ISA

typedef struct {
    const char *name;
    void (*fn)(void);
    int per_isa;
} entry;

static const entry all_tests[] = {
#define PARE_TEST(name) {#name, test_##name, 0},
#define PARE_TEST_ISA(name) {#name, test_##name, 1},
#include "test_list.inc"
#undef PARE_TEST
#undef PARE_TEST_ISA
};

int pare_test_fails;
static int current_isa = -1;
static char test_dir[512];
static char path_buf[1024];

void pare_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    pare_test_fails++;
    if (pare_test_fails > 20)
        return;
    fprintf(stderr, "  %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int pare_test_isa(void) { return current_isa < 0 ? (int)pare_isa_active() : current_isa; }

const char *pare_test_dir(void)
{
    if (!test_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(test_dir, sizeof test_dir, "%s/pare-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(test_dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return test_dir;
}

const char *pare_test_path(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", pare_test_dir(), name);
    return path_buf;
}

void pare_test_stop_at(const pare_train_event *ev, void *user)
{
    pare_test_stopper *s = user;
    if (ev->kind == PARE_EV_STEP && ev->global_step == s->at)
        s->flag = 1;
}

void pare_test_stop_config(pare_train_config *c, pare_test_stopper *s, long at)
{
    s->flag = 0;
    s->at = at;
    c->cancel = &s->flag;
    c->callback = pare_test_stop_at;
    c->user = s;
}

void pare_test_fill(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    pare_rng r;
    pare_rng_seed(&r, seed, 77, 0, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * pare_rng_uniform(&r);
}

double pare_test_max_rel(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / (fabs(b[i]) > 1 ? fabs(b[i]) : 1);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}

float *pare_guard_alloc(size_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t bytes = n * sizeof(float);
    size_t data_pages = (bytes + (size_t)page - 1) / (size_t)page;
    size_t total = (data_pages + 1) * (size_t)page;
    char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    mprotect(base + data_pages * (size_t)page, (size_t)page, PROT_NONE);
    return (float *)(base + data_pages * (size_t)page - bytes);
}

void pare_guard_free(float *p, size_t n)
{
    if (!p)
        return;
    long page = sysconf(_SC_PAGESIZE);
    size_t bytes = n * sizeof(float);
    size_t data_pages = (bytes + (size_t)page - 1) / (size_t)page;
    char *base = (char *)p + bytes - data_pages * (size_t)page;
    munmap(base, (data_pages + 1) * (size_t)page);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

typedef struct job {
    int test, isa;
    pid_t pid;
    char log[256];
    double t0;
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_child(int t, int isa)
{
    if (isa >= 0) {
        current_isa = isa;
        pare_isa_override(isa);
    }
    all_tests[t].fn();
    fflush(stdout);
    fflush(stderr);
    if (test_dir[0])
        remove_tree(test_dir);
    _exit(pare_test_fails ? 1 : 0);
}

static void label(char *buf, size_t n, int t, int isa)
{
    if (isa >= 0)
        snprintf(buf, n, "%s[%s]", all_tests[t].name, pare_isa_name((pare_isa_level)isa));
    else
        snprintf(buf, n, "%s", all_tests[t].name);
}

int main(int argc, char **argv)
{
    int jobs = 1, nofork = 0, list = 0;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-j") && i + 1 < argc)
            jobs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-fork"))
            nofork = 1;
        else if (!strcmp(argv[i], "--list"))
            list = 1;
        else
            filter = argv[i];
    }
    if (jobs < 1)
        jobs = 1;
    int ntests = (int)(sizeof all_tests / sizeof all_tests[0]);
    int best = (int)pare_cpu()->level;
    /* The work list: (test, isa) pairs. */
    int cap = ntests * PARE_ISA_COUNT, nwork = 0;
    int *wt = malloc(sizeof(int) * (size_t)cap), *wi = malloc(sizeof(int) * (size_t)cap);
    for (int t = 0; t < ntests; t++) {
        if (filter && !strstr(all_tests[t].name, filter))
            continue;
        if (all_tests[t].per_isa) {
            for (int l = 0; l <= best; l++) {
                wt[nwork] = t;
                wi[nwork++] = l;
            }
        } else {
            wt[nwork] = t;
            wi[nwork++] = -1;
        }
    }
    if (list) {
        char name[256];
        for (int i = 0; i < nwork; i++) {
            label(name, sizeof name, wt[i], wi[i]);
            puts(name);
        }
        free(wt);
        free(wi);
        return 0;
    }
    printf("pare tests: %d to run, %d at a time, ISA %s\n", nwork, nofork ? 1 : jobs,
           pare_isa_name((pare_isa_level)best));
    fflush(stdout);
    int passed = 0, failed = 0;
    double start = now_s();
    if (nofork) {
        for (int i = 0; i < nwork; i++) {
            char name[256];
            label(name, sizeof name, wt[i], wi[i]);
            pare_test_fails = 0;
            current_isa = wi[i];
            pare_isa_override(wi[i]);
            all_tests[wt[i]].fn();
            printf("%s %s\n", pare_test_fails ? "FAIL" : "pass", name);
            if (pare_test_fails)
                failed++;
            else
                passed++;
        }
        printf("%d passed, %d failed\n", passed, failed);
        free(wt);
        free(wi);
        return failed ? 1 : 0;
    }
    job *running = calloc((size_t)jobs, sizeof(job));
    int next = 0, active = 0;
    const char *tmp = getenv("TMPDIR");
    while (next < nwork || active > 0) {
        while (active < jobs && next < nwork) {
            int slot = 0;
            while (running[slot].pid)
                slot++;
            job *j = &running[slot];
            j->test = wt[next];
            j->isa = wi[next];
            next++;
            snprintf(j->log, sizeof j->log, "%s/pare-test-log-%d-%d.txt", tmp && *tmp ? tmp : "/tmp",
                     (int)getpid(), slot);
            fflush(stdout);
            fflush(stderr);
            j->t0 = now_s();
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 2;
            }
            if (pid == 0) {
                FILE *f = freopen(j->log, "w", stdout);
                if (!f)
                    _exit(3);
                dup2(fileno(stdout), 2);
                setvbuf(stdout, NULL, _IOLBF, 0);
                run_child(j->test, j->isa);
            }
            j->pid = pid;
            active++;
        }
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int s = 0; s < jobs; s++) {
            job *j = &running[s];
            if (j->pid != pid)
                continue;
            char name[256];
            label(name, sizeof name, j->test, j->isa);
            int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            double dt = now_s() - j->t0;
            printf("%s %-44s %7.2fs", ok ? "pass" : "FAIL", name, dt);
            if (WIFSIGNALED(status))
                printf("  (killed by signal %d)", WTERMSIG(status));
            putchar('\n');
            FILE *f = fopen(j->log, "r");
            if (f) {
                char line[1024];
                int lines = 0;
                while (fgets(line, sizeof line, f))
                    if (!ok || getenv("PARE_TEST_VERBOSE"))
                        if (lines++ < 60)
                            fputs(line, stdout);
                fclose(f);
            }
            unlink(j->log);
            fflush(stdout);
            if (ok)
                passed++;
            else
                failed++;
            j->pid = 0;
            active--;
        }
    }
    printf("(%.1f s)\n%d passed, %d failed\n", now_s() - start, passed, failed);
    free(running);
    free(wt);
    free(wi);
    return failed ? 1 : 0;
}
