/*
 * Native CPU kernels of the reassembly core (see functional/reassembly.py for the
 * definition).  Plain C with no torch headers: the library loads this file's shared
 * object with ctypes, splits the work into row ranges and runs the ranges on a thread
 * pool (ctypes releases the GIL).  Every loop is written in gather form, so each task
 * writes only rows it owns: no atomics, and results do not depend on the thread count.
 *
 * Geometry array (int64, 12 entries):
 *   N, C, G, Hin, Win, Hout, Wout, K, up, stride, pad_top, pad_left
 * Output pixel (y, x), tap (a, b) reads source pixel
 *   row = (y / up) * stride + a - pad_top,  col = (x / up) * stride + b - pad_left,
 * contributing nothing when the source pixel lies outside the image.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t N, C, G, Hin, Win, Hout, Wout, K, up, stride, pad_top, pad_left;
    int64_t Cg, Hq, Wq, Q, phase_len;
} geom_t;

static geom_t read_geom(const int64_t *p) {
    geom_t g;
    g.N = p[0]; g.C = p[1]; g.G = p[2]; g.Hin = p[3]; g.Win = p[4];
    g.Hout = p[5]; g.Wout = p[6]; g.K = p[7]; g.up = p[8]; g.stride = p[9];
    g.pad_top = p[10]; g.pad_left = p[11];
    g.Cg = g.G > 0 ? g.C / g.G : 0;
    if (g.up < 1 || g.stride < 1 || g.K < 1) { g.Hq = g.Wq = g.Q = g.phase_len = 0; return g; }
    g.Hq = (g.Hout + g.up - 1) / g.up;
    g.Wq = (g.Wout + g.up - 1) / g.up;
    /* Source column groups reachable from one output row: Wq + (K - 1) / stride. */
    g.Q = g.Wq + (g.K - 1) / g.stride;
    g.phase_len = g.up * g.Q;
    return g;
}

/* Error codes returned by every kernel (the Python loader turns them into exceptions). */
#define RS_OK 0
#define RS_NO_MEMORY 1
#define RS_BAD_GEOMETRY 2

/* Whether the geometry can be run safely: positive sizes and factors, G | C, padding < K. */
static int geom_valid(const geom_t *g) {
    if (g->N < 0 || g->C < 1 || g->G < 1 || g->Hin < 0 || g->Win < 0 || g->Hout < 0 || g->Wout < 0) return 0;
    if (g->K < 1 || g->up < 1 || g->stride < 1) return 0;
    if (g->C % g->G != 0) return 0;
    if (g->pad_top < 0 || g->pad_top >= g->K || g->pad_left < 0 || g->pad_left >= g->K) return 0;
    return 1;
}

/* Index arithmetic shared by the kernels (offsets in elements, NCHW contiguous). */

/* Source row sr of channel c of image n: features / grad_x, N x C x Hin x Win. */
static inline int64_t source_row(const geom_t *g, int64_t n, int64_t c, int64_t sr) {
    return ((n * g->C + c) * g->Hin + sr) * g->Win;
}

/* Plane of channel c of image n: out / grad_out, N x C x Hout x Wout. */
static inline int64_t output_plane(const geom_t *g, int64_t n, int64_t c) {
    return (n * g->C + c) * g->Hout * g->Wout;
}

/* Output row y of tap (a, b) of kernel group grp of image n: kernels, N x G*K*K x Hout x Wout. */
static inline int64_t kernel_row(const geom_t *g, int64_t n, int64_t grp, int64_t a, int64_t b, int64_t y) {
    return ((((n * g->G + grp) * g->K + a) * g->K + b) * g->Hout + y) * g->Wout;
}

/* End (exclusive) of the output rows q * up .. (q + 1) * up - 1 that share source rows. */
static inline int64_t row_group_end(const geom_t *g, int64_t q) {
    return (q + 1) * g->up < g->Hout ? (q + 1) * g->up : g->Hout;
}

/* Source column held by phase[r][j] (see below); it may lie outside the row. */
static inline int64_t phase_column(const geom_t *g, int64_t r, int64_t j) {
    return (j / g->up) * g->stride + r - g->pad_left;
}

/* Output columns [*lo, *hi) whose tap column b reads a column inside the row,
 * 0 <= (x / up) * stride + b - pad_left < Win: taps outside the image are skipped, so a
 * non-finite weight there contributes nothing (no 0 * inf). */
static inline void tap_columns(const geom_t *g, int64_t b, int64_t *lo, int64_t *hi) {
    const int64_t need = g->pad_left - b, lim = g->Win - 1 + g->pad_left - b;
    const int64_t q_lo = need <= 0 ? 0 : (need + g->stride - 1) / g->stride;
    const int64_t q_hi = lim < 0 ? 0 : lim / g->stride + 1;
    *lo = q_lo * g->up < g->Wout ? q_lo * g->up : g->Wout;
    *hi = q_hi * g->up < g->Wout ? q_hi * g->up : g->Wout;
    if (*hi < *lo) *hi = *lo;
}

/*
 * The "phase" buffers turn every tap's strided / repeated column access into a
 * contiguous one.  phase[r][j] = row[(j / up) * stride + r - pad_left] (zero outside), for
 * r in [0, stride).  Tap column b of output column x then reads
 * phase[b % stride][x + up * (b / stride)], so the inner loops are plain axpy's.
 */
#define DEFINE_KERNELS(T, SUFFIX)                                                          \
static void build_phases_##SUFFIX(const T *row, T *phase, const geom_t *g) {               \
    for (int64_t r = 0; r < g->stride; ++r) {                                              \
        T *ph = phase + r * g->phase_len;                                                   \
        for (int64_t j = 0; j < g->phase_len; ++j) {                                       \
            int64_t col = phase_column(g, r, j);                                           \
            ph[j] = (col >= 0 && col < g->Win) ? row[col] : (T)0;                          \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
static inline const T *tap_source_##SUFFIX(const T *phase, int64_t b, const geom_t *g) {   \
    return phase + (b % g->stride) * g->phase_len + g->up * (b / g->stride);               \
}                                                                                          \
                                                                                           \
/* Tasks are (n, q): one group of `up` output rows sharing source rows. */                 \
int reassemble_forward_##SUFFIX(const T *x, const T *m, T *out, const int64_t *gp,        \
                                 int64_t task_begin, int64_t task_end) {                   \
    geom_t g = read_geom(gp);                                                              \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                      \
    T *phase = (T *)malloc(sizeof(T) * (size_t)(g.stride * g.phase_len + 1));                            \
    if (!phase) return RS_NO_MEMORY;                                                                    \
    for (int64_t task = task_begin; task < task_end; ++task) {                             \
        const int64_t n = task / g.Hq, q = task % g.Hq;                                    \
        const int64_t y_end = row_group_end(&g, q);                                        \
        for (int64_t c = 0; c < g.C; ++c) {                                                \
            const int64_t grp = c / g.Cg;                                                  \
            T *out_plane = out + output_plane(&g, n, c);                                   \
            for (int64_t y = q * g.up; y < y_end; ++y)                                     \
                memset(out_plane + y * g.Wout, 0, sizeof(T) * g.Wout);                     \
            for (int64_t a = 0; a < g.K; ++a) {                                            \
                const int64_t sr = q * g.stride + a - g.pad_top;                           \
                if (sr < 0 || sr >= g.Hin) continue;                                       \
                build_phases_##SUFFIX(x + source_row(&g, n, c, sr), phase, &g);            \
                for (int64_t y = q * g.up; y < y_end; ++y) {                               \
                    T *restrict o = out_plane + y * g.Wout;                                \
                    for (int64_t b = 0; b < g.K; ++b) {                                    \
                        const T *restrict w = m + kernel_row(&g, n, grp, a, b, y);         \
                        const T *restrict s = tap_source_##SUFFIX(phase, b, &g);           \
                        int64_t lo, hi; tap_columns(&g, b, &lo, &hi);                     \
                        for (int64_t xx = lo; xx < hi; ++xx) o[xx] += w[xx] * s[xx];      \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    free(phase);                                                                             \
    return RS_OK;                                                                           \
}                                                                                          \
                                                                                           \
/* d out / d kernels: same traversal, a dot product over the group's channels. */         \
int reassemble_grad_kernels_##SUFFIX(const T *x, const T *grad_out, T *grad_m,            \
                                      const int64_t *gp, int64_t task_begin,               \
                                      int64_t task_end) {                                  \
    geom_t g = read_geom(gp);                                                              \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                      \
    T *phase = (T *)malloc(sizeof(T) * (size_t)(g.stride * g.phase_len + 1));                            \
    if (!phase) return RS_NO_MEMORY;                                                                    \
    for (int64_t task = task_begin; task < task_end; ++task) {                             \
        const int64_t n = task / g.Hq, q = task % g.Hq;                                    \
        const int64_t y_end = row_group_end(&g, q);                                        \
        for (int64_t c = 0; c < g.C; ++c) {                                                \
            const int64_t grp = c / g.Cg;                                                  \
            const T *go_plane = grad_out + output_plane(&g, n, c);                         \
            for (int64_t a = 0; a < g.K; ++a) {                                            \
                const int64_t sr = q * g.stride + a - g.pad_top;                           \
                if (sr < 0 || sr >= g.Hin) continue;                                       \
                build_phases_##SUFFIX(x + source_row(&g, n, c, sr), phase, &g);            \
                for (int64_t y = q * g.up; y < y_end; ++y) {                               \
                    const T *restrict go = go_plane + y * g.Wout;                          \
                    for (int64_t b = 0; b < g.K; ++b) {                                    \
                        T *restrict gw = grad_m + kernel_row(&g, n, grp, a, b, y);         \
                        const T *restrict s = tap_source_##SUFFIX(phase, b, &g);           \
                        int64_t lo, hi; tap_columns(&g, b, &lo, &hi);                     \
                        for (int64_t xx = lo; xx < hi; ++xx) gw[xx] += go[xx] * s[xx];    \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    free(phase);                                                                             \
    return RS_OK;                                                                           \
}                                                                                          \
                                                                                           \
/* d out / d features in gather form.  Tasks are (n, source row): every output row that  \
 * reads the source row adds into phase-shaped accumulators, which are then folded back   \
 * onto the row's columns. */                                                              \
int reassemble_grad_features_##SUFFIX(const T *m, const T *grad_out, T *grad_x,           \
                                       const int64_t *gp, int64_t task_begin,              \
                                       int64_t task_end) {                                 \
    geom_t g = read_geom(gp);                                                              \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                      \
    T *acc = (T *)malloc(sizeof(T) * (size_t)(g.stride * g.phase_len + 1));                              \
    if (!acc) return RS_NO_MEMORY;                                                                      \
    for (int64_t task = task_begin; task < task_end; ++task) {                             \
        const int64_t n = task / g.Hin, sr = task % g.Hin;                                 \
        for (int64_t c = 0; c < g.C; ++c) {                                                \
            const int64_t grp = c / g.Cg;                                                  \
            const T *go_plane = grad_out + output_plane(&g, n, c);                         \
            int touched = 0;                                                               \
            memset(acc, 0, sizeof(T) * g.stride * g.phase_len);                            \
            for (int64_t a = 0; a < g.K; ++a) {                                            \
                const int64_t num = sr + g.pad_top - a;                                    \
                if (num < 0 || num % g.stride != 0) continue;                              \
                const int64_t q = num / g.stride;                                          \
                if (q >= g.Hq) continue;                                                   \
                const int64_t y_end = row_group_end(&g, q);                                \
                for (int64_t y = q * g.up; y < y_end; ++y) {                               \
                    const T *restrict go = go_plane + y * g.Wout;                          \
                    for (int64_t b = 0; b < g.K; ++b) {                                    \
                        const T *restrict w = m + kernel_row(&g, n, grp, a, b, y);         \
                        T *restrict s = (T *)tap_source_##SUFFIX(acc, b, &g);              \
                        int64_t lo, hi; tap_columns(&g, b, &lo, &hi);                     \
                        for (int64_t xx = lo; xx < hi; ++xx) s[xx] += w[xx] * go[xx];     \
                    }                                                                      \
                    touched = 1;                                                           \
                }                                                                          \
            }                                                                              \
            if (!touched) continue;                                                        \
            T *gx = grad_x + source_row(&g, n, c, sr);                                     \
            for (int64_t r = 0; r < g.stride; ++r) {                                       \
                const T *ph = acc + r * g.phase_len;                                       \
                for (int64_t j = 0; j < g.phase_len; ++j) {                                \
                    int64_t col = phase_column(&g, r, j);                                  \
                    if (col >= 0 && col < g.Win) gx[col] += ph[j];                         \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    free(acc);                                                                             \
    return RS_OK;                                                                             \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)

/* Version of the kernel ABI; the Python loader refuses a stale build. */
int64_t reassemble_abi_version(void) { return 2; }

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Native CPU kernels of the resamplers reassembly core (loaded with ctypes).", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&native_module); }
