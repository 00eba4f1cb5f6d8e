/* stagecount: QEMU 7.2 TCG plugin (API v1) behind cross/profile.sh, adapted from
 * ../shared/tools/arm-profile. Counts guest instructions in total and per function (syms=FILE:
 * "start size type name" lines from nm -n -S, sorted by start) and, at every
 * clock_gettime(CLOCK_MONOTONIC) or clock_gettime(CLOCK_PROCESS_CPUTIME_ID) syscall (aarch64
 * nr 113, clock id 1 or 2), records a mark: the clock id, the running total and a snapshot of
 * every function's count. MaskRCNN.detect reads both clocks, in that order, at its start and at
 * each stage boundary; `bench` reads only the monotonic clock around detect; cross/profile.sh
 * tells them apart by that pattern. Output at exit (qemu -d plugin -D FILE):
 *   mark I CLOCK TOTAL              one per mark, in order
 *   total N / unattributed N
 *   sym NAME C0 C1 ... CM FINAL     every function that ran: its count at each mark, then at exit
 * Inline (non-atomic) counters: run the guest with --threads 1. */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qemu-plugin.h>
QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;
typedef struct { uint64_t start, end; char *name; uint64_t count; } sym_t;
static sym_t *syms; static size_t nsyms; static uint64_t other_count, total;
enum { MAXMARKS = 256 };
static uint64_t *snap[MAXMARKS]; static int mark_clock[MAXMARKS]; static uint64_t mark_total[MAXMARKS];
static int nmarks;
static long find(uint64_t a) {
    size_t lo = 0, hi = nsyms;
    while (lo < hi) { size_t m = (lo + hi) / 2; if (syms[m].start <= a) lo = m + 1; else hi = m; }
    if (lo == 0) return -1;
    sym_t *s = &syms[lo - 1];
    return (a < s->end) ? (long)(lo - 1) : -1;
}
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &total, n);
    size_t i = 0;
    while (i < n) {
        struct qemu_plugin_insn *in = qemu_plugin_tb_get_insn(tb, i);
        long s = find(qemu_plugin_insn_vaddr(in));
        size_t j = i + 1;
        while (j < n && find(qemu_plugin_insn_vaddr(qemu_plugin_tb_get_insn(tb, j))) == s) j++;
        qemu_plugin_register_vcpu_insn_exec_inline(in, QEMU_PLUGIN_INLINE_ADD_U64,
                                                   s >= 0 ? &syms[s].count : &other_count, j - i);
        i = j;
    }
}
static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8) {
    if (num != 113 || (a1 != 1 && a1 != 2) || nmarks >= MAXMARKS) return;
    uint64_t *s = malloc(nsyms * sizeof *s + 1);
    if (!s) return;
    for (size_t i = 0; i < nsyms; i++) s[i] = syms[i].count;
    snap[nmarks] = s; mark_clock[nmarks] = (int)a1; mark_total[nmarks] = total; nmarks++;
}
static void plugin_exit(qemu_plugin_id_t id, void *p) {
    FILE *o = stderr;
    GString *g = g_string_new(NULL);
    for (int m = 0; m < nmarks; m++)
        g_string_append_printf(g, "mark %d %d %" PRIu64 "\n", m, mark_clock[m], mark_total[m]);
    g_string_append_printf(g, "total %" PRIu64 "\nunattributed %" PRIu64 "\n", total, other_count);
    qemu_plugin_outs(g->str);
    g_string_truncate(g, 0);
    for (size_t i = 0; i < nsyms; i++) {
        if (!syms[i].count) continue;
        g_string_append_printf(g, "sym %s", syms[i].name);
        for (int m = 0; m < nmarks; m++) g_string_append_printf(g, " %" PRIu64, snap[m][i]);
        g_string_append_printf(g, " %" PRIu64 "\n", syms[i].count);
        if (g->len > (1 << 16)) { qemu_plugin_outs(g->str); g_string_truncate(g, 0); }
    }
    qemu_plugin_outs(g->str);
    g_string_free(g, TRUE);
    (void)o;
}
QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv) {
    for (int i = 0; i < argc; i++) if (!strncmp(argv[i], "syms=", 5)) {
        FILE *f = fopen(argv[i] + 5, "r"); if (!f) return -1;
        size_t cap = 0; char name[4096]; uint64_t st, sz;
        while (fscanf(f, "%" SCNx64 " %" SCNx64 " %*s %4095s", &st, &sz, name) == 3) {
            if (nsyms == cap) { cap = cap ? cap * 2 : 4096; syms = realloc(syms, cap * sizeof *syms); }
            syms[nsyms++] = (sym_t){st, st + sz, strdup(name), 0};
        }
        fclose(f);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
