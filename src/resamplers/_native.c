/*
 * Native CPU kernels of the reassembly core (see functional/reassembly.py for the
 * definition).  Plain C with no torch headers: the library loads this file's shared
 * object with ctypes; native_run splits the work into row ranges and runs them on torch's
 * OpenMP team (or the loader runs them on its thread pool; ctypes releases the GIL).  Every
 * loop is written in gather form, so each task writes only rows it owns: no atomics, and
 * results do not depend on the thread count.
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

/* The first 64-byte boundary at or after p (a block allocated 64 bytes longer). */
static inline void *rs_align64(void *p) {
    return p ? (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63) : NULL;
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
 * phase[b % stride][x + up * (b / stride)], so the inner loops are contiguous.
 */
static inline int64_t tap_phase_offset(const geom_t *g, int64_t b) {
    return (b % g->stride) * g->phase_len + g->up * (b / g->stride);
}

/*
 * Register blocking.  The kernels work on blocks of one SIMD vector of output columns
 * (written with the compiler's vector extension at each level's register width, below)
 * for CB or CBK channels at once: the channels of a block share each kernel load, and the
 * accumulators stay in registers across all K*K taps.  Where a tap's columns leave the
 * image at a block's edge, its weights (forward) or its sums (kernel gradient) are masked to
 * the columns inside, so a non-finite weight there still contributes nothing.  The forward
 * and the kernel gradient keep a tile's kernel rows regrouped block by block (regroup, below),
 * so that each block reads one stream of weights, or adds into one stream of sums, instead
 * of K*K rows.
 */
#define CB 4
/* The wide channel blocks (the forward, both gradients): nine loads feed eight
 * multiply-adds, and each kernel-gradient vector is read and written once for eight
 * channels. */
#define CBK 8
/* Row groups (source rows for the feature gradient) per tile of every pass. */
#define RS_TILE 8
/* Bytes of regrouped kernel rows a tile of the forward or the kernel gradient keeps (fewer
 * row groups a tile where the rows are wider). */
#define RS_WEIGHT_BYTES (512 * 1024)

/* One copy of every kernel per instruction-set level, each compiled for its target with
 * vectors of its registers' width (64 bytes for AVX-512, 32 for AVX2; 64-byte vectors on
 * AVX2 spill: they ran 4x slower than the baseline's), and exported wrappers that call the
 * level chosen once per process (native_isa_level / native_select_isa). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RS_HAVE_LEVELS 1
#define RS_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define RS_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#endif

/* The helpers below pass vectors by value; they are static and always inlined
 * into the kernels of every level, so the baseline build's vector ABI never crosses a call. */
#pragma GCC diagnostic ignored "-Wpsabi"
#define RS_INLINE static inline __attribute__((always_inline))

/* GCC permutes a vector's lanes by an index vector; other compilers take the scalar loops. */
#if defined(__GNUC__) && !defined(__clang__)
#define RS_HAVE_SHUFFLE 1
#define RS_SHUFFLE(V, IDX) __builtin_shuffle((V), (IDX))
#define RS_SHUFFLE2(A, B, IDX) __builtin_shuffle((A), (B), (IDX))
#else
#define RS_HAVE_SHUFFLE 0
#define RS_SHUFFLE(V, IDX) (V) /* never run: the callers test RS_HAVE_SHUFFLE */
#define RS_SHUFFLE2(A, B, IDX) (A)
#endif

/* Channel blocks of CB channels; the fast paths name their accumulators acc0 .. acc3
 * (literal names keep them in registers). */
#define RS_ACC_ZERO(V) V acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}
#define RS_ACC_ZERO8(V) RS_ACC_ZERO(V), acc4 = {0}, acc5 = {0}, acc6 = {0}, acc7 = {0}
/* Two rows' accumulators: acc0 .. acc7 and bcc0 .. bcc7, zero. */
#define RS_PAIR_ZERO8(V) RS_ACC_ZERO8(V); V bcc0 = {0}, bcc1 = {0}, bcc2 = {0}, bcc3 = {0}, \
    bcc4 = {0}, bcc5 = {0}, bcc6 = {0}, bcc7 = {0}
/* accI += W0 * v, bccI += W1 * v for the vectors v at P, P + STEP, ..., P + 7 STEP: each
 * vector loaded feeds both rows. */
#define RS_PAIR_MADD8(V, LOAD, W0, W1, P, STEP)                                             \
    do {                                                                                    \
        V v_ = LOAD(P);                                                                     \
        acc0 += (W0) * v_; bcc0 += (W1) * v_; v_ = LOAD((P) + (STEP));                      \
        acc1 += (W0) * v_; bcc1 += (W1) * v_; v_ = LOAD((P) + 2 * (STEP));                  \
        acc2 += (W0) * v_; bcc2 += (W1) * v_; v_ = LOAD((P) + 3 * (STEP));                  \
        acc3 += (W0) * v_; bcc3 += (W1) * v_; v_ = LOAD((P) + 4 * (STEP));                  \
        acc4 += (W0) * v_; bcc4 += (W1) * v_; v_ = LOAD((P) + 5 * (STEP));                  \
        acc5 += (W0) * v_; bcc5 += (W1) * v_; v_ = LOAD((P) + 6 * (STEP));                  \
        acc6 += (W0) * v_; bcc6 += (W1) * v_; v_ = LOAD((P) + 7 * (STEP));                  \
        acc7 += (W0) * v_; bcc7 += (W1) * v_;                                               \
    } while (0)
/* acc0 .. acc3 (acc7) += W times the vectors at P, P + STEP, P + 2 STEP, ... (LOAD reads one). */
#define RS_MADD4(LOAD, W, P, STEP)                                                          \
    acc0 += (W) * LOAD(P); acc1 += (W) * LOAD((P) + (STEP));                                \
    acc2 += (W) * LOAD((P) + 2 * (STEP)); acc3 += (W) * LOAD((P) + 3 * (STEP))
#define RS_MADD8(LOAD, W, P, STEP) RS_MADD8_INTO(acc, LOAD, W, P, STEP)
/* const V A0 .. A7: the vectors at P, P + STEP, ..., P + 7 STEP. */
#define RS_ROWS8(V, A, LOAD, P, STEP)                                                       \
    const V A##0 = LOAD(P), A##1 = LOAD((P) + (STEP)), A##2 = LOAD((P) + 2 * (STEP));       \
    const V A##3 = LOAD((P) + 3 * (STEP)), A##4 = LOAD((P) + 4 * (STEP));                   \
    const V A##5 = LOAD((P) + 5 * (STEP)), A##6 = LOAD((P) + 6 * (STEP));                   \
    const V A##7 = LOAD((P) + 7 * (STEP))
/* A0 .. A7 += W times the vectors at P, P + STEP, ..., P + 7 STEP. */
#define RS_MADD8_INTO(A, LOAD, W, P, STEP)                                                  \
    A##0 += (W) * LOAD(P); A##1 += (W) * LOAD((P) + (STEP));                                \
    A##2 += (W) * LOAD((P) + 2 * (STEP)); A##3 += (W) * LOAD((P) + 3 * (STEP));             \
    A##4 += (W) * LOAD((P) + 4 * (STEP)); A##5 += (W) * LOAD((P) + 5 * (STEP));             \
    A##6 += (W) * LOAD((P) + 6 * (STEP)); A##7 += (W) * LOAD((P) + 7 * (STEP))
/* acc0 .. acc3 (acc7) read from / written to P, P + STEP, ... */
#define RS_LOAD4(LOAD, P, STEP)                                                             \
    acc0 = LOAD(P); acc1 = LOAD((P) + (STEP)); acc2 = LOAD((P) + 2 * (STEP)); acc3 = LOAD((P) + 3 * (STEP))
#define RS_LOAD8(LOAD, P, STEP)                                                             \
    RS_LOAD4(LOAD, P, STEP);                                                                \
    acc4 = LOAD((P) + 4 * (STEP)); acc5 = LOAD((P) + 5 * (STEP));                           \
    acc6 = LOAD((P) + 6 * (STEP)); acc7 = LOAD((P) + 7 * (STEP))
#define RS_STORE4(P, STEP)                                                                  \
    memcpy(P, &acc0, sizeof acc0); memcpy((P) + (STEP), &acc1, sizeof acc1);                \
    memcpy((P) + 2 * (STEP), &acc2, sizeof acc2); memcpy((P) + 3 * (STEP), &acc3, sizeof acc3)
#define RS_STORE8(P, STEP) RS_STORE8_TO(P, STEP, acc)
/* A0 .. A7 written to O[0] + X, ..., O[7] + X (eight channels' output rows). */
#define RS_STORE8_AT(O, X, A)                                                               \
    memcpy((O)[0] + (X), &A##0, sizeof A##0); memcpy((O)[1] + (X), &A##1, sizeof A##1);     \
    memcpy((O)[2] + (X), &A##2, sizeof A##2); memcpy((O)[3] + (X), &A##3, sizeof A##3);     \
    memcpy((O)[4] + (X), &A##4, sizeof A##4); memcpy((O)[5] + (X), &A##5, sizeof A##5);     \
    memcpy((O)[6] + (X), &A##6, sizeof A##6); memcpy((O)[7] + (X), &A##7, sizeof A##7)
/* The same for a block of WIDTH columns (the row's last block may be partial). */
#define RS_STORE8_PART(STORE_PART, VL, O, X, A, WIDTH)                                      \
    if ((WIDTH) == (VL)) {                                                                  \
        RS_STORE8_AT(O, X, A);                                                              \
    } else {                                                                                \
        STORE_PART((O)[0] + (X), A##0, 0, WIDTH); STORE_PART((O)[1] + (X), A##1, 0, WIDTH); \
        STORE_PART((O)[2] + (X), A##2, 0, WIDTH); STORE_PART((O)[3] + (X), A##3, 0, WIDTH); \
        STORE_PART((O)[4] + (X), A##4, 0, WIDTH); STORE_PART((O)[5] + (X), A##5, 0, WIDTH); \
        STORE_PART((O)[6] + (X), A##6, 0, WIDTH); STORE_PART((O)[7] + (X), A##7, 0, WIDTH); \
    }
/* A0 .. A7 written to P, P + STEP, ... */
#define RS_STORE8_TO(P, STEP, A)                                                            \
    memcpy(P, &A##0, sizeof A##0); memcpy((P) + (STEP), &A##1, sizeof A##1);                \
    memcpy((P) + 2 * (STEP), &A##2, sizeof A##2); memcpy((P) + 3 * (STEP), &A##3, sizeof A##3); \
    memcpy((P) + 4 * (STEP), &A##4, sizeof A##4); memcpy((P) + 5 * (STEP), &A##5, sizeof A##5); \
    memcpy((P) + 6 * (STEP), &A##6, sizeof A##6); memcpy((P) + 7 * (STEP), &A##7, sizeof A##7)
#define RS_ACC_ZERO4 RS_ACC_ZERO
/* The feature gradient's sums of entries [FIRST, LAST) into W (4 or 8) fold rows at F, FS
 * apart, from zero, in registers: entry e's tap i has its kernel vector at W0 + TAP_W[e] +
 * i DW and its ring rows at G0 + TAP_O[e] - i UP, CR apart. */
#define RS_ENTRY_TAPS(W, V, LOAD, F, FS, FIRST, LAST, TAPS, W0, TAP_W, DW, G0, TAP_O, UP, CR) \
    do {                                                                                   \
        RS_ACC_ZERO##W(V);                                                                 \
        for (int64_t e_ = (FIRST); e_ < (LAST); ++e_) {                                    \
            __typeof__(W0) wp_ = (W0) + (TAP_W)[e_];                                       \
            __typeof__(G0) gs_ = (G0) + (TAP_O)[e_];                                       \
            for (int64_t tap_ = 0; tap_ < (TAPS); ++tap_) {                                \
                const V wv_ = LOAD(wp_ + tap_ * (DW));                                     \
                RS_MADD##W(LOAD, wv_, gs_ - tap_ * (UP), CR);                              \
            }                                                                              \
        }                                                                                  \
        RS_STORE##W(F, FS);                                                                \
    } while (0)

/* Whether the forward takes two output rows a tap (16 accumulators need AVX-512's 32
 * vector registers; at the other levels they would spill). */
#define RS_PAIR_ROWS_f32_v4 1
#define RS_PAIR_ROWS_f64_v4 1
#define RS_PAIR_ROWS_f32_v3 0
#define RS_PAIR_ROWS_f64_v3 0
#define RS_PAIR_ROWS_f32_base 0
#define RS_PAIR_ROWS_f64_base 0

/* Instantiate a kernel family once per level: suffixes S_v4, S_v3 and S_base (only S_base
 * off x86-64 GCC). */
#ifdef RS_HAVE_LEVELS
#define RS_EACH_LEVEL(DEF, T, IT, S) DEF(T, IT, S##_v4, 64, RS_TARGET_V4) DEF(T, IT, S##_v3, 32, RS_TARGET_V3) DEF(T, IT, S##_base, 64, )
#define RS_EACH_LEVEL_NOWIDTH(DEF, T, IT, S) DEF(T, IT, S##_v4, RS_TARGET_V4) DEF(T, IT, S##_v3, RS_TARGET_V3) DEF(T, IT, S##_base, )
#define RS_EACH_LEVEL_TYPED(DEF, T, S) DEF(T, S##_v4, RS_TARGET_V4) DEF(T, S##_v3, RS_TARGET_V3) DEF(T, S##_base, )
#else
#define RS_EACH_LEVEL(DEF, T, IT, S) DEF(T, IT, S##_base, 64, )
#define RS_EACH_LEVEL_NOWIDTH(DEF, T, IT, S) DEF(T, IT, S##_base, )
#define RS_EACH_LEVEL_TYPED(DEF, T, S) DEF(T, S##_base, )
#endif

#define DEFINE_KERNELS(T, IT, SUFFIX, VBYTES, TARGET)                                        \
typedef T vec_##SUFFIX __attribute__((vector_size(VBYTES)));                               \
enum { VL_##SUFFIX = (int)(VBYTES / sizeof(T)) };                                          \
                                                                                           \
RS_INLINE vec_##SUFFIX load_##SUFFIX(const T *p) {                                         \
    vec_##SUFFIX v; memcpy(&v, p, sizeof v); return v;                                      \
}                                                                                          \
                                                                                           \
/* Lanes [i0, i1) of p, zero elsewhere (nothing outside them is read). */                  \
RS_INLINE vec_##SUFFIX load_part_##SUFFIX(const T *p, int64_t i0, int64_t i1) {            \
    if (i0 == 0 && i1 == VL_##SUFFIX) return load_##SUFFIX(p);                             \
    T t[VL_##SUFFIX] = {0};                                                                 \
    for (int64_t i = i0; i < i1; ++i) t[i] = p[i];                                          \
    return load_##SUFFIX(t);                                                                \
}                                                                                          \
                                                                                           \
RS_INLINE void store_part_##SUFFIX(T *p, vec_##SUFFIX v, int64_t i0, int64_t i1) {         \
    if (i0 == 0 && i1 == VL_##SUFFIX) { memcpy(p, &v, sizeof v); return; }                 \
    T t[VL_##SUFFIX];                                                                      \
    memcpy(t, &v, sizeof v);                                                               \
    for (int64_t i = i0; i < i1; ++i) p[i] = t[i];                                          \
}                                                                                          \
                                                                                           \
/* Integer lanes of the vector's width, for lane masks (a bitwise AND zeroes the lanes    \
 * outside a range, so 0 * inf never happens there). */                                    \
typedef IT ivec_##SUFFIX __attribute__((vector_size(VBYTES)));                             \
                                                                                           \
RS_INLINE vec_##SUFFIX masked_##SUFFIX(vec_##SUFFIX v, ivec_##SUFFIX mask) {               \
    return (vec_##SUFFIX)((ivec_##SUFFIX)v & mask);                                        \
}                                                                                          \
                                                                                           \
/* Each of the VL values at src twice, into dst[0 .. 2 VL). */                          \
RS_INLINE void repeat_twice_##SUFFIX(const T *src, T *dst) {                               \
    const vec_##SUFFIX v = load_##SUFFIX(src);                                             \
    ivec_##SUFFIX first, second;                                                           \
    for (int i = 0; i < VL_##SUFFIX; ++i) {                                                \
        first[i] = (IT)(i / 2); second[i] = (IT)(VL_##SUFFIX / 2 + i / 2);                \
    }                                                                                      \
    const vec_##SUFFIX lo = RS_SHUFFLE(v, first), hi = RS_SHUFFLE(v, second);             \
    memcpy(dst, &lo, sizeof lo);                                                           \
    memcpy(dst + VL_##SUFFIX, &hi, sizeof hi);                                             \
}                                                                                          \
                                                                                           \
/* The sums of adjacent pairs of the 2 VL values at src: dst[i] += src[2 i] + src[2 i + 1]. */\
RS_INLINE void add_pair_sums_##SUFFIX(const T *src, T *dst) {                              \
    const vec_##SUFFIX a = load_##SUFFIX(src), b = load_##SUFFIX(src + VL_##SUFFIX);       \
    ivec_##SUFFIX even, odd;                                                               \
    for (int i = 0; i < VL_##SUFFIX; ++i) { even[i] = (IT)(2 * i); odd[i] = (IT)(2 * i + 1); }\
    const vec_##SUFFIX sum = load_##SUFFIX(dst) + RS_SHUFFLE2(a, b, even) + RS_SHUFFLE2(a, b, odd);\
    memcpy(dst, &sum, sizeof sum);                                                         \
}                                                                                          \
                                                                                           \
/* Every second of the 2 VL values at src: dst[i] = src[2 i] (a stride-2 phase). */          \
RS_INLINE void take_even_##SUFFIX(const T *src, T *dst) {                                  \
    const vec_##SUFFIX a = load_##SUFFIX(src), b = load_##SUFFIX(src + VL_##SUFFIX);       \
    ivec_##SUFFIX even;                                                                    \
    for (int i = 0; i < VL_##SUFFIX; ++i) even[i] = (IT)(2 * i);                           \
    const vec_##SUFFIX v = RS_SHUFFLE2(a, b, even);                                        \
    memcpy(dst, &v, sizeof v);                                                             \
}                                                                                          \
                                                                                           \
/* Two stride-2 phases woven back: dst[2 i] += even[i], dst[2 i + 1] += odd[i]. */          \
RS_INLINE void add_interleaved_##SUFFIX(const T *even, const T *odd, T *dst) {              \
    const vec_##SUFFIX e = load_##SUFFIX(even), o = load_##SUFFIX(odd);                    \
    ivec_##SUFFIX lo, hi;                                                                  \
    for (int i = 0; i < VL_##SUFFIX; ++i) {                                                \
        lo[i] = (IT)(i / 2 + (i % 2) * VL_##SUFFIX);                                       \
        hi[i] = (IT)(VL_##SUFFIX / 2 + i / 2 + (i % 2) * VL_##SUFFIX);                     \
    }                                                                                      \
    const vec_##SUFFIX first = load_##SUFFIX(dst) + RS_SHUFFLE2(e, o, lo);                 \
    const vec_##SUFFIX second = load_##SUFFIX(dst + VL_##SUFFIX) + RS_SHUFFLE2(e, o, hi);  \
    memcpy(dst, &first, sizeof first);                                                     \
    memcpy(dst + VL_##SUFFIX, &second, sizeof second);                                     \
}                                                                                          \
                                                                                           \
/* The feature gradient's fold rows (phase r at fold + r * flen) added onto the columns     \
 * [c0, c1) of a source row: column qc * stride + r - pad_left takes phase r's entries      \
 * qc * up .. qc * up + up - 1 (each column has one (r, qc); bounds computed, no tests). */ \
RS_INLINE void fold_columns_##SUFFIX(T *gx, const T *fold, int64_t flen, const geom_t *g,   \
                                     int64_t c0, int64_t c1) {                              \
    for (int64_t r = 0; r < g->stride && c0 < c1; ++r) {                                    \
        const int64_t lo = c0 + g->pad_left - r, hi = c1 + g->pad_left - r;                 \
        const int64_t q0 = lo <= 0 ? 0 : (lo + g->stride - 1) / g->stride;                  \
        int64_t q1 = hi <= 0 ? 0 : (hi + g->stride - 1) / g->stride;                        \
        if (q1 > g->Q) q1 = g->Q;                                                           \
        const T *ph = fold + r * flen;                                                      \
        for (int64_t qc = q0; qc < q1; ++qc)                                                \
            for (int64_t u = 0; u < g->up; ++u) gx[qc * g->stride + r - g->pad_left] += ph[qc * g->up + u]; \
    }                                                                                       \
}                                                                                           \
                                                                                            \
RS_INLINE void build_phases_##SUFFIX(const T *row, T *phase, const geom_t *g) {            \
    for (int64_t r = 0; r < g->stride; ++r) {                                              \
        T *ph = phase + r * g->phase_len;                                                   \
        /* Column groups [q_lo, q_hi) read columns inside the row; the zeros around them    \
         * are the same for every row: the scratch comes zeroed, and only this writes it. */ \
        const int64_t need = g->pad_left - r, lim = g->Win - 1 + g->pad_left - r;          \
        int64_t q_lo = need <= 0 ? 0 : (need + g->stride - 1) / g->stride;                 \
        int64_t q_hi = lim < 0 ? 0 : lim / g->stride + 1;                                  \
        if (q_hi > g->Q) q_hi = g->Q;                                                      \
        if (q_lo > q_hi) q_lo = q_hi;                                                      \
        const T *src = row + r - g->pad_left;                                              \
        if (g->up == 1 && g->stride == 1) {                                                \
            memcpy(ph + q_lo, src + q_lo, sizeof(T) * (size_t)(q_hi - q_lo));               \
        } else if (g->up == 1) {                                                           \
            int64_t qc = q_lo;                                                             \
            /* Stride 2: whole vectors while both loads stay inside the row. */            \
            if (RS_HAVE_SHUFFLE && g->stride == 2)                                         \
                for (; qc + VL_##SUFFIX <= q_hi && 2 * (qc + VL_##SUFFIX) + r - g->pad_left <= g->Win; \
                     qc += VL_##SUFFIX)                                                    \
                    take_even_##SUFFIX(src + 2 * qc, ph + qc);                             \
            for (; qc < q_hi; ++qc) ph[qc] = src[qc * g->stride];                          \
        } else if (g->up == 2 && g->stride == 1) {                                         \
            int64_t qc = q_lo;                                                             \
            if (RS_HAVE_SHUFFLE)                                                           \
                for (; qc + VL_##SUFFIX <= q_hi; qc += VL_##SUFFIX)                        \
                    repeat_twice_##SUFFIX(src + qc, ph + 2 * qc);                          \
            for (; qc < q_hi; ++qc) { ph[2 * qc] = src[qc]; ph[2 * qc + 1] = src[qc]; }    \
        } else if (g->up == 2) {                                                           \
            for (int64_t qc = q_lo; qc < q_hi; ++qc) {                                     \
                const T v = src[qc * g->stride];                                           \
                ph[2 * qc] = v; ph[2 * qc + 1] = v;                                        \
            }                                                                              \
        } else {                                                                           \
            for (int64_t qc = q_lo; qc < q_hi; ++qc) {                                     \
                const T v = src[qc * g->stride];                                           \
                for (int64_t u = 0; u < g->up; ++u) ph[qc * g->up + u] = v;                \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
/* Per-call scratch.  phase: CBK channels x K source rows of phases; fold: CBK channels of \
 * feature-gradient phases; lo/hi/offset: per tap column, the output columns inside the    \
 * image and the phase offset; full_lo/full_hi: the output columns where every tap column  \
 * is inside (per phase r for the feature gradient, with its shifts); the tap lists of     \
 * one row group (pointers, tap column, shift). */                                          \
typedef struct {                                                                           \
    T *phase, *fold;                                                                       \
    IT *masks; /* per block of VL output columns and tap column b: lanes inside the row */ \
    int64_t *lo, *hi, *offset, *slot, *tag, *tap_b, *tap_o, *tap_rw, *r_start, *r_lo, *r_hi; \
    const T **src;                                                                          \
    int *ok;                                                                               \
    int64_t full_lo, full_hi;                                                              \
} scratch_##SUFFIX;                                                                        \
                                                                                           \
/* The feature gradient's fold rows: phase_len rounded up to whole vectors. */              \
RS_INLINE int64_t fold_len_##SUFFIX(const geom_t *g) {                                      \
    return (g->phase_len + VL_##SUFFIX - 1) / VL_##SUFFIX * VL_##SUFFIX;                    \
}                                                                                           \
                                                                                            \
static void scratch_free_##SUFFIX(scratch_##SUFFIX *s) {                                  \
    free(s->phase); free(s->fold); free(s->lo); free(s->src); free(s->ok);   \
    free(s->masks);                                                                        \
}                                                                                          \
                                                                                           \
static int scratch_alloc_##SUFFIX(scratch_##SUFFIX *s, const geom_t *g) {                 \
    const size_t plane = (size_t)(g->stride * g->phase_len), K = (size_t)g->K;             \
    const size_t taps = K * K * (size_t)g->up;                                             \
    /* VL elements of padding: full-vector loads of a block's unused lanes stay inside. */ \
    s->phase = (T *)calloc(CBK * K * plane + VL_##SUFFIX, sizeof(T));                      \
    s->fold = (T *)malloc(sizeof(T) * (size_t)(2 * CBK * g->stride * fold_len_##SUFFIX(g))); \
    /* The feature gradient's entries of a pair of tasks: at most K tap rows of up rows per phase. */ \
    const size_t entries = 2 * (size_t)g->stride * K * (size_t)g->up;                       \
    s->lo = (int64_t *)malloc(sizeof(int64_t) * (5 * K + taps + 2 * entries + 3 * (size_t)g->stride + 1)); \
    s->src = (const T **)malloc(sizeof(T *) * taps);                                       \
    s->ok = (int *)malloc(sizeof(int) * K);                                                \
    const int64_t blocks = (g->Wout + VL_##SUFFIX - 1) / VL_##SUFFIX;                      \
    s->masks = (IT *)malloc(sizeof(IT) * (size_t)(blocks * g->K * VL_##SUFFIX + 1));     \
    if (!s->phase || !s->fold || !s->lo || !s->src || !s->ok || !s->masks) {    \
        scratch_free_##SUFFIX(s); return 0;                                                \
    }                                                                                      \
    s->hi = s->lo + K; s->offset = s->hi + K;                                              \
    s->slot = s->offset + K; s->tag = s->slot + K;                                         \
    s->tap_b = s->tag + K; s->tap_o = s->tap_b + taps;                                      \
    s->tap_rw = s->tap_o + entries; s->r_start = s->tap_rw + entries;                       \
    s->r_lo = s->r_start + g->stride + 1;                                                   \
    s->r_hi = s->r_lo + g->stride;                                                         \
    s->full_lo = 0; s->full_hi = g->Wout;                                                  \
    for (int64_t r = 0; r < g->stride; ++r) { s->r_lo[r] = INT64_MIN; s->r_hi[r] = INT64_MAX; } \
    for (int64_t b = 0; b < g->K; ++b) {                                                   \
        tap_columns(g, b, &s->lo[b], &s->hi[b]);                                           \
        s->offset[b] = tap_phase_offset(g, b);                                             \
        if (s->lo[b] > s->full_lo) s->full_lo = s->lo[b];                                  \
        if (s->hi[b] < s->full_hi) s->full_hi = s->hi[b];                                  \
        const int64_t r = b % g->stride, shift = g->up * (b / g->stride);                  \
        if (s->lo[b] + shift > s->r_lo[r]) s->r_lo[r] = s->lo[b] + shift;                  \
        if (s->hi[b] + shift < s->r_hi[r]) s->r_hi[r] = s->hi[b] + shift;                  \
    }                                                                                      \
    /* The border blocks' lane masks, built once a call rather than once a tap. */         \
    for (int64_t j = 0; j < blocks; ++j)                                                   \
        for (int64_t b = 0; b < g->K; ++b)                                                 \
            for (int64_t i = 0; i < VL_##SUFFIX; ++i) {                                    \
                const int64_t col = j * VL_##SUFFIX + i;                                   \
                s->masks[(j * g->K + b) * VL_##SUFFIX + i] = col >= s->lo[b] && col < s->hi[b] ? (IT)-1 : 0;\
            }                                                                              \
    return 1;                                                                              \
}                                                                                          \
                                                                                           \
/* The lanes of the block at output column x0 whose tap column b reads inside the row. */ \
RS_INLINE ivec_##SUFFIX tap_mask_##SUFFIX(const scratch_##SUFFIX *s, const geom_t *g,       \
                                          int64_t x0, int64_t b) {                         \
    ivec_##SUFFIX mask;                                                                    \
    memcpy(&mask, s->masks + (x0 / VL_##SUFFIX * g->K + b) * VL_##SUFFIX, sizeof mask);    \
    return mask;                                                                           \
}                                                                                          \
                                                                                           \
/* The phase rows of channels c0 .. c0 + cb - 1 live in a ring of K slots per channel:     \
 * source row sr in slot sr mod K (the K rows of a window are distinct mod K), tag[slot]   \
 * says which (image, row) it holds, so consecutive row groups rebuild only the rows they  \
 * add.  Channel ci, slot k at phase + (ci * K + k) * plane. */                            \
RS_INLINE void ring_reset_##SUFFIX(scratch_##SUFFIX *s, const geom_t *g) {                 \
    for (int64_t k = 0; k < g->K; ++k) s->tag[k] = -1;                                     \
}                                                                                          \
                                                                                           \
/* The phases for the source rows of row group q; ok[a] says whether tap row a lies        \
 * inside the image, slot[a] where its phases are. */                                      \
RS_INLINE void block_phases_##SUFFIX(const T *x, scratch_##SUFFIX *s, const geom_t *g,     \
                                     int64_t n, int64_t q, int64_t c0, int64_t cb) {       \
    const int64_t plane = g->stride * g->phase_len;                                        \
    for (int64_t a = 0; a < g->K; ++a) {                                                   \
        const int64_t sr = q * g->stride + a - g->pad_top;                                 \
        s->ok[a] = sr >= 0 && sr < g->Hin;                                                 \
        if (!s->ok[a]) continue;                                                           \
        const int64_t k = sr % g->K, key = n * g->Hin + sr;                                \
        s->slot[a] = k;                                                                    \
        if (s->tag[k] == key) continue;                                                    \
        s->tag[k] = key;                                                                   \
        for (int64_t ci = 0; ci < cb; ++ci)                                                \
            build_phases_##SUFFIX(x + source_row(g, n, c0 + ci, sr),                       \
                                  s->phase + (ci * g->K + k) * plane, g);                  \
    }                                                                                      \
}                                                                                          \
                                                                                           \
/* The taps of the row group block_phases last set up whose source rows are inside, in (a, b) \
 * order (the same for each of its output rows): phase column start of channel 0 in src, b  \
 * in tap_b. */                                                                             \
RS_INLINE int64_t group_taps_##SUFFIX(scratch_##SUFFIX *s, const geom_t *g) {               \
    const int64_t plane = g->stride * g->phase_len;                                         \
    int64_t count = 0;                                                                      \
    for (int64_t a = 0; a < g->K; ++a) {                                                    \
        if (!s->ok[a]) continue;                                                            \
        for (int64_t b = 0; b < g->K; ++b, ++count) {                                       \
            s->src[count] = s->phase + s->slot[a] * plane + s->offset[b];                   \
            s->tap_b[count] = b;                                                            \
        }                                                                                   \
    }                                                                                       \
    return count;                                                                           \
}                                                                                           \
                                                                                            \
                                                                                            \
/* A tile's share of regrouped kernel rows (RS_WEIGHT_BYTES at most, so that they stay in the \
 * level-2 cache across the channel blocks). */                                             \
RS_INLINE int64_t task_tile_len_##SUFFIX(const geom_t *g) {                                 \
    return (g->Wout + VL_##SUFFIX - 1) / VL_##SUFFIX * g->K * g->K * g->up * VL_##SUFFIX;   \
}                                                                                           \
                                                                                            \
/* Tasks a tile holds whose regrouped kernels take `len` elements each: RS_WEIGHT_BYTES a   \
 * tile at most, RS_TILE tasks at most. */                                                  \
RS_INLINE int64_t tile_tasks_##SUFFIX(int64_t len) {                                        \
    const int64_t tasks = RS_WEIGHT_BYTES / (int64_t)sizeof(T) / (len > 0 ? len : 1);       \
    return tasks < 1 ? 1 : tasks > RS_TILE ? RS_TILE : tasks;                               \
}                                                                                           \
                                                                                            \
/* Row group q's kernel rows of group grp (its taps whose source row is inside, in row_taps' \
 * order) and their regrouped copy in a tile: per block j of VL output columns, per tap t,  \
 * per row r of the group, VL values at tile + ((j * taps + t) * up + r) * VL, so that a    \
 * block reads or writes one stream.  to_tile: the forward's weights, zero in the lanes     \
 * whose tap column leaves the image or the row (no block then needs a mask: the phases are \
 * zero outside the image, so a non-finite weight there adds nothing); otherwise the kernel \
 * gradient's sums written back to the rows. */                                             \
RS_INLINE void regroup_##SUFFIX(T *tile, T *m, const scratch_##SUFFIX *s, const geom_t *g,  \
                                int64_t n, int64_t grp, int64_t q, int to_tile) {           \
    const int64_t VL = VL_##SUFFIX, y0 = q * g->up, rows = row_group_end(g, q) - y0;        \
    int64_t taps = 0;                                                                       \
    for (int64_t a = 0; a < g->K; ++a) {                                                    \
        const int64_t sr = q * g->stride + a - g->pad_top;                                  \
        taps += sr >= 0 && sr < g->Hin ? g->K : 0;                                          \
    }                                                                                       \
    int64_t t = 0;                                                                          \
    for (int64_t a = 0; a < g->K; ++a) {                                                    \
        const int64_t sr = q * g->stride + a - g->pad_top;                                  \
        if (sr < 0 || sr >= g->Hin) continue;                                               \
        for (int64_t b = 0; b < g->K; ++b, ++t)                                             \
            for (int64_t r = 0; r < rows; ++r) {                                            \
                T *row = m + kernel_row(g, n, grp, a, b, y0 + r);                           \
                for (int64_t x0 = 0, j = 0; x0 < g->Wout; x0 += VL, ++j) {                  \
                    const int64_t width = g->Wout - x0 < VL ? g->Wout - x0 : VL;            \
                    T *at = tile + ((j * taps + t) * g->up + r) * VL;                       \
                    if (to_tile) {                                                          \
                        const vec_##SUFFIX w = masked_##SUFFIX(load_part_##SUFFIX(row + x0, 0, width), \
                                                               tap_mask_##SUFFIX(s, g, x0, b)); \
                        memcpy(at, &w, sizeof w);                                           \
                    } else {                                                                \
                        store_part_##SUFFIX(row + x0, load_##SUFFIX(at), 0, width);         \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
    }                                                                                       \
}                                                                                           \
                                                                                            \
/* Tasks are (n, q): one group of `up` output rows sharing source rows. */                  \
TARGET                                                                                      \
int reassemble_forward_##SUFFIX(const T *x, const T *m, T *out, const int64_t *gp,          \
                                 int64_t task_begin, int64_t task_end) {                    \
    geom_t g = read_geom(gp);                                                               \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                            \
    scratch_##SUFFIX s;                                                                     \
    if (!scratch_alloc_##SUFFIX(&s, &g)) return RS_NO_MEMORY;                               \
    const int64_t VL = VL_##SUFFIX, cstep = g.K * g.stride * g.phase_len, wstep = g.up * VL; \
    const int64_t task_w = task_tile_len_##SUFFIX(&g), tile = tile_tasks_##SUFFIX(task_w);      \
    void *wt_block = malloc(sizeof(T) * (size_t)(tile * task_w + VL) + 64);                 \
    T *wt = (T *)rs_align64(wt_block); /* whole cache lines a vector */                     \
    if (!wt_block) { scratch_free_##SUFFIX(&s); return RS_NO_MEMORY; }                      \
    /* Tiles of row groups: per channel block, the ring carries the shared source rows from \
     * one row group to the next, while the tile's regrouped kernels stay in cache. */      \
    for (int64_t t0 = task_begin; t0 < task_end; t0 += tile) {                              \
    const int64_t t1 = t0 + tile < task_end ? t0 + tile : task_end;                         \
    for (int64_t c0 = 0, cb = 0; c0 < g.C; c0 += cb) {                                      \
        const int64_t grp = c0 / g.Cg, group_end = (grp + 1) * g.Cg;                        \
        cb = group_end - c0 < CBK ? group_end - c0 : CBK;                                   \
        if (c0 % g.Cg == 0)                                                                 \
            for (int64_t task = t0; task < t1; ++task)                                      \
                regroup_##SUFFIX(wt + (task - t0) * task_w, (T *)m, &s, &g, task / g.Hq, grp, task % g.Hq, 1); \
        ring_reset_##SUFFIX(&s, &g);                                                        \
        for (int64_t task = t0; task < t1; ++task) {                                        \
            const int64_t n = task / g.Hq, q = task % g.Hq;                                 \
            const int64_t y_end = row_group_end(&g, q);                                     \
            block_phases_##SUFFIX(x, &s, &g, n, q, c0, cb);                                 \
            const int64_t taps = group_taps_##SUFFIX(&s, &g);                               \
            for (int64_t y = q * g.up; y < y_end; ++y) {                                    \
                const T *w_row = wt + (task - t0) * task_w + (y - q * g.up) * VL;           \
                /* With 32 vector registers, rows 2i and 2i + 1 of a row group go together  \
                 * (the second row's blocks are then done). */                              \
                const int64_t row_in_group = y - q * g.up;                                  \
                const int pairs = RS_PAIR_ROWS_##SUFFIX && (row_in_group % 2 == 1 || y + 1 < y_end); \
                if (pairs && cb == CBK && row_in_group % 2 == 1) continue;                  \
                T *o[CBK];                                                                  \
                for (int64_t ci = 0; ci < CBK; ++ci)                                        \
                    o[ci] = out + output_plane(&g, n, c0 + (ci < cb ? ci : 0)) + y * g.Wout; \
                for (int64_t x0 = 0, j = 0; x0 < g.Wout; x0 += VL, ++j) {                   \
                    const T *wb = w_row + j * taps * wstep;                                 \
                    const int64_t width = g.Wout - x0 < VL ? g.Wout - x0 : VL;              \
                    if (pairs && cb == CBK) {                                               \
                        /* Rows y and y + 1 read the same phases: each feature vector feeds \
                         * both rows' multiply-adds (16 accumulators, ten loads a tap). */  \
                        RS_PAIR_ZERO8(vec_##SUFFIX);                                        \
                        for (int64_t t = 0; t < taps; ++t) {                                \
                            const vec_##SUFFIX w0 = load_##SUFFIX(wb + t * wstep);          \
                            const vec_##SUFFIX w1 = load_##SUFFIX(wb + t * wstep + VL);     \
                            RS_PAIR_MADD8(vec_##SUFFIX, load_##SUFFIX, w0, w1, s.src[t] + x0, cstep); \
                        }                                                                   \
                        RS_STORE8_PART(store_part_##SUFFIX, VL, o, x0, acc, width);                                  \
                        RS_STORE8_PART(store_part_##SUFFIX, VL, o, g.Wout + x0, bcc, width);                         \
                        continue;                                                           \
                    }                                                                       \
                    if (cb == CBK) {                                                        \
                        /* Eight channels: nine loads feed eight multiply-adds. */          \
                        RS_ACC_ZERO8(vec_##SUFFIX);                                         \
                        for (int64_t t = 0; t < taps; ++t) {                                \
                            const vec_##SUFFIX wv = load_##SUFFIX(wb + t * wstep);          \
                            const T *src = s.src[t] + x0;                                   \
                            RS_MADD8(load_##SUFFIX, wv, src, cstep);                        \
                        }                                                                   \
                        RS_STORE8_PART(store_part_##SUFFIX, VL, o, x0, acc, width);                                  \
                        continue;                                                           \
                    }                                                                       \
                    /* Fewer channels: CB at a time; unused channel slots reread the half's \
                     * first channel and are never stored. */                               \
                    for (int64_t h = 0; h < cb; h += CB) {                                  \
                        const int64_t hb = cb - h < CB ? cb - h : CB;                       \
                        const int64_t step1 = hb > 1 ? cstep : 0, step2 = hb > 2 ? 2 * cstep : 0; \
                        const int64_t step3 = hb > 3 ? 3 * cstep : 0;                       \
                        RS_ACC_ZERO(vec_##SUFFIX);                                          \
                        for (int64_t t = 0; t < taps; ++t) {                                \
                            const vec_##SUFFIX wv = load_##SUFFIX(wb + t * wstep);          \
                            const T *src = s.src[t] + x0 + h * cstep;                       \
                            acc0 += wv * load_##SUFFIX(src);                                \
                            acc1 += wv * load_##SUFFIX(src + step1);                        \
                            acc2 += wv * load_##SUFFIX(src + step2);                        \
                            acc3 += wv * load_##SUFFIX(src + step3);                        \
                        }                                                                   \
                        T *const *oh = o + h;                                               \
                        store_part_##SUFFIX(oh[0] + x0, acc0, 0, width);                    \
                        if (hb > 1) store_part_##SUFFIX(oh[1] + x0, acc1, 0, width);        \
                        if (hb > 2) store_part_##SUFFIX(oh[2] + x0, acc2, 0, width);        \
                        if (hb > 3) store_part_##SUFFIX(oh[3] + x0, acc3, 0, width);        \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    }                                                                                       \
    free(wt_block);                                                                         \
    scratch_free_##SUFFIX(&s);                                                              \
    return RS_OK;                                                                           \
}                                                                                           \
                                                                                           \
/* d out / d kernels: same traversal, a dot product over the group's channels (CBK at a    \
 * time, summed in a tile of regrouped rows (one stream a block) and written to grad_m, whose \
 * rows of taps outside the image the caller zeroes). */                                     \
TARGET                                                                                     \
int reassemble_grad_kernels_##SUFFIX(const T *x, const T *grad_out, T *grad_m,             \
                                      const int64_t *gp, int64_t task_begin,               \
                                      int64_t task_end) {                                  \
    geom_t g = read_geom(gp);                                                              \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                           \
    scratch_##SUFFIX s;                                                                    \
    if (!scratch_alloc_##SUFFIX(&s, &g)) return RS_NO_MEMORY;                              \
    const int64_t VL = VL_##SUFFIX, cstep = g.K * g.stride * g.phase_len;                  \
    const int64_t wstep = g.up * VL, task_w = task_tile_len_##SUFFIX(&g), tile = tile_tasks_##SUFFIX(task_w); \
    void *sums_block = malloc(sizeof(T) * (size_t)(tile * task_w + VL) + 64);               \
    T *sums = (T *)rs_align64(sums_block); /* whole cache lines a vector */                 \
    if (!sums_block) { scratch_free_##SUFFIX(&s); return RS_NO_MEMORY; }                    \
    /* Tiles of row groups: per channel block, the ring carries the shared source rows from \
     * one row group to the next, while the tile's sums stay in cache. */                   \
    for (int64_t t0 = task_begin; t0 < task_end; t0 += tile) {                              \
    const int64_t t1 = t0 + tile < task_end ? t0 + tile : task_end;                         \
    for (int64_t c0 = 0, cb = 0; c0 < g.C; c0 += cb) {                                     \
        const int64_t grp = c0 / g.Cg, group_end = (grp + 1) * g.Cg;                       \
        cb = group_end - c0 < CBK ? group_end - c0 : CBK;                                  \
        if (c0 % g.Cg == 0) memset(sums, 0, sizeof(T) * (size_t)((t1 - t0) * task_w));      \
        ring_reset_##SUFFIX(&s, &g);                                                       \
        for (int64_t task = t0; task < t1; ++task) {                                       \
            const int64_t n = task / g.Hq, q = task % g.Hq;                                \
            const int64_t y_end = row_group_end(&g, q);                                    \
            block_phases_##SUFFIX(x, &s, &g, n, q, c0, cb);                                \
            const int64_t taps = group_taps_##SUFFIX(&s, &g);                               \
            for (int64_t y = q * g.up; y < y_end; ++y) {                                   \
                const T *go = grad_out + output_plane(&g, n, c0) + y * g.Wout;             \
                const int64_t go_step = g.Hout * g.Wout;                                   \
                T *sum_row = sums + (task - t0) * task_w + (y - q * g.up) * VL;             \
                /* With 32 vector registers, rows 2i and 2i + 1 of a row group go together  \
                 * (each phase vector feeds both rows' sums; the second row's whole blocks  \
                 * are then done). */                                                       \
                const int64_t row_in_group = y - q * g.up;                                  \
                const int pairs = RS_PAIR_ROWS_##SUFFIX && cb == CBK && (row_in_group % 2 == 1 || y + 1 < y_end); \
                for (int64_t x0 = 0, j = 0; x0 < g.Wout; x0 += VL, ++j) {                   \
                    const int64_t width = g.Wout - x0 < VL ? g.Wout - x0 : VL;             \
                    T *sb = sum_row + j * taps * wstep;                                     \
                    if (pairs && width == VL) {                                             \
                        if (row_in_group % 2 == 1) continue;                                \
                        const T *gn = go + g.Wout;                                          \
                        RS_ROWS8(vec_##SUFFIX, g, load_##SUFFIX, go + x0, go_step);         \
                        RS_ROWS8(vec_##SUFFIX, h, load_##SUFFIX, gn + x0, go_step);         \
                        const int full = x0 >= s.full_lo && x0 + VL <= s.full_hi;           \
                        for (int64_t t = 0; t < taps; ++t) {                                \
                            const int64_t b = s.tap_b[t];                                   \
                            const int64_t lo = s.lo[b] - x0, hi = s.hi[b] - x0;             \
                            if (!full && (lo >= VL || hi <= 0)) continue;                   \
                            const T *src = s.src[t] + x0;                                   \
                            vec_##SUFFIX v = load_##SUFFIX(src);                            \
                            vec_##SUFFIX sum = g0 * v, sum1 = h0 * v;                       \
                            v = load_##SUFFIX(src + cstep); sum += g1 * v; sum1 += h1 * v;  \
                            v = load_##SUFFIX(src + 2 * cstep); sum += g2 * v; sum1 += h2 * v; \
                            v = load_##SUFFIX(src + 3 * cstep); sum += g3 * v; sum1 += h3 * v; \
                            v = load_##SUFFIX(src + 4 * cstep); sum += g4 * v; sum1 += h4 * v; \
                            v = load_##SUFFIX(src + 5 * cstep); sum += g5 * v; sum1 += h5 * v; \
                            v = load_##SUFFIX(src + 6 * cstep); sum += g6 * v; sum1 += h6 * v; \
                            v = load_##SUFFIX(src + 7 * cstep); sum += g7 * v; sum1 += h7 * v; \
                            if (!full) {                                                    \
                                const ivec_##SUFFIX mask = tap_mask_##SUFFIX(&s, &g, x0, b); \
                                sum = masked_##SUFFIX(sum, mask); sum1 = masked_##SUFFIX(sum1, mask); \
                            }                                                               \
                            T *at = sb + t * wstep;                                         \
                            const vec_##SUFFIX total = load_##SUFFIX(at) + sum, total1 = load_##SUFFIX(at + VL) + sum1; \
                            memcpy(at, &total, sizeof total); memcpy(at + VL, &total1, sizeof total1); \
                        }                                                                   \
                        continue;                                                           \
                    }                                                                       \
                    if (cb == CBK && width == VL) {                                        \
                        /* Eight channels with whole vectors; taps whose columns leave the \
                         * image at this block add a masked sum (the lanes outside add zero). */\
                        RS_ROWS8(vec_##SUFFIX, g, load_##SUFFIX, go + x0, go_step);         \
                        const int full = x0 >= s.full_lo && x0 + VL <= s.full_hi;          \
                        for (int64_t t = 0; t < taps; ++t) {                               \
                            const int64_t b = s.tap_b[t];                                  \
                            const int64_t lo = s.lo[b] - x0, hi = s.hi[b] - x0;            \
                            if (!full && (lo >= VL || hi <= 0)) continue;                  \
                            const T *src = s.src[t] + x0;                                  \
                            vec_##SUFFIX sum = g0 * load_##SUFFIX(src);                    \
                            sum += g1 * load_##SUFFIX(src + cstep);                        \
                            sum += g2 * load_##SUFFIX(src + 2 * cstep);                    \
                            sum += g3 * load_##SUFFIX(src + 3 * cstep);                    \
                            sum += g4 * load_##SUFFIX(src + 4 * cstep);                    \
                            sum += g5 * load_##SUFFIX(src + 5 * cstep);                    \
                            sum += g6 * load_##SUFFIX(src + 6 * cstep);                    \
                            sum += g7 * load_##SUFFIX(src + 7 * cstep);                    \
                            if (!full) sum = masked_##SUFFIX(sum, tap_mask_##SUFFIX(&s, &g, x0, b));\
                            const vec_##SUFFIX total = load_##SUFFIX(sb + t * wstep) + sum; \
                            memcpy(sb + t * wstep, &total, sizeof total);                   \
                        }                                                                  \
                        continue;                                                          \
                    }                                                                      \
                    /* Fewer channels or a partial vector: lanes [i0, i1) only. */         \
                    for (int64_t t = 0; t < taps; ++t) {                                   \
                        const int64_t b = s.tap_b[t];                                      \
                        const int64_t lo = s.lo[b] - x0, hi = s.hi[b] - x0;                \
                        if (lo >= VL || hi <= 0) continue;                                 \
                        const int64_t i0 = lo > 0 ? lo : 0, i1 = hi < width ? hi : width;  \
                        if (i0 >= i1) continue;                                            \
                        const T *src = s.src[t] + x0;                                      \
                        vec_##SUFFIX sum = {0};                                            \
                        for (int64_t ci = 0; ci < cb; ++ci)                                \
                            sum += load_part_##SUFFIX(go + ci * go_step + x0, i0, i1) *    \
                                   load_part_##SUFFIX(src + ci * cstep, i0, i1);           \
                        const vec_##SUFFIX total = load_part_##SUFFIX(sb + t * wstep, i0, i1) + sum; \
                        store_part_##SUFFIX(sb + t * wstep, total, i0, i1);                 \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (c0 + cb == group_end)                                                           \
            for (int64_t task = t0; task < t1; ++task)                                      \
                regroup_##SUFFIX(sums + (task - t0) * task_w, grad_m, &s, &g, task / g.Hq, grp, task % g.Hq, 0); \
    }                                                                                      \
    }                                                                                      \
    free(sums_block);                                                                       \
    scratch_free_##SUFFIX(&s);                                                             \
    return RS_OK;                                                                          \
}                                                                                          \
                                                                                           \
/* The feature gradient's ring of padded grad_out rows: CBK channels of `rows` rows of `row` \
 * elements (`channel` apart), output column x of a row at `left` + x; tag[slot] says which \
 * (image, output row) a slot holds. */                                                     \
typedef struct {                                                                            \
    T *rows;                                                                                \
    int64_t *tag;                                                                           \
    int64_t count, row, left, channel;                                                      \
} ring_##SUFFIX;                                                                            \
                                                                                            \
/* Task (n, sr)'s entries from index `base` on, per phase r in the forward's order (tap rows, \
 * then output rows): tap_o gets the ring row's offset, tap_rw the offset of the entry's    \
 * first (entry, tap) pair in the source row's regrouped weights (source_row_weights); the  \
 * grad_out rows they read are brought into the ring.  r_start, where given, gets each      \
 * phase's first entry.  Returns the number of entries. */                                  \
RS_INLINE int64_t source_row_entries_##SUFFIX(scratch_##SUFFIX *s, ring_##SUFFIX *ring, const geom_t *g, \
                                              const T *grad_out, int64_t n, int64_t sr, \
                                              int64_t c0, int64_t cb, int64_t base, int64_t *r_start) { \
    int64_t count = base, pairs = 0;                                                        \
    for (int64_t r = 0; r < g->stride; ++r) {                                               \
        const int64_t taps_per_entry = (g->K - r + g->stride - 1) / g->stride;              \
        if (r_start) r_start[r] = count;                                                    \
        for (int64_t a = 0; a < g->K; ++a) {                                                \
            const int64_t num = sr + g->pad_top - a;                                        \
            if (num < 0 || num % g->stride != 0 || num / g->stride >= g->Hq) continue;      \
            const int64_t q = num / g->stride, y_end = row_group_end(g, q);                 \
            for (int64_t y = q * g->up; y < y_end; ++y) {                                   \
                const int64_t slot = y % ring->count;                                       \
                if (ring->tag[slot] != n * g->Hout + y) {                                   \
                    for (int64_t ci = 0; ci < cb; ++ci)                                     \
                        memcpy(ring->rows + ci * ring->channel + slot * ring->row + ring->left, \
                               grad_out + output_plane(g, n, c0 + ci) + y * g->Wout, sizeof(T) * (size_t)g->Wout); \
                    ring->tag[slot] = n * g->Hout + y;                                      \
                }                                                                           \
                s->tap_rw[count] = pairs * VL_##SUFFIX;                                     \
                pairs += taps_per_entry;                                                    \
                s->tap_o[count++] = slot * ring->row + ring->left;                          \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    if (r_start) r_start[g->stride] = count;                                                \
    return count - base;                                                                    \
}                                                                                           \
                                                                                            \
/* Source row sr's kernel vectors in the order its sums take them (entry by entry, tap by   \
 * tap within: source_row_entries' order), regrouped block by block: block j's vector of    \
 * (entry, tap) pair p at tile + (j * P + p) * VL for the P pairs returned, so that each block \
 * of the sums reads one stream.  Tap i of an entry (tap column r + i stride) is read shifted \
 * right by i up columns, with zeros where that leaves the row (phase entry j0 + l of the   \
 * block takes the kernel at output column j0 + l - i up). */                               \
RS_INLINE int64_t source_row_weights_##SUFFIX(T *tile, const T *m, const geom_t *g, int64_t n, int64_t grp, \
                                              int64_t sr) {                                 \
    const int64_t VL = VL_##SUFFIX, blocks = (g->phase_len + VL - 1) / VL;                  \
    int64_t pairs = 0;                                                                      \
    for (int64_t r = 0; r < g->stride; ++r)                                                 \
        for (int64_t a = 0; a < g->K; ++a) {                                                \
            const int64_t num = sr + g->pad_top - a;                                        \
            if (num < 0 || num % g->stride != 0 || num / g->stride >= g->Hq) continue;      \
            const int64_t q = num / g->stride;                                              \
            pairs += (row_group_end(g, q) - q * g->up) * ((g->K - r + g->stride - 1) / g->stride); \
        }                                                                                   \
    int64_t p = 0;                                                                          \
    for (int64_t r = 0; r < g->stride; ++r)                                                 \
        for (int64_t a = 0; a < g->K; ++a) {                                                \
            const int64_t num = sr + g->pad_top - a;                                        \
            if (num < 0 || num % g->stride != 0 || num / g->stride >= g->Hq) continue;      \
            const int64_t q = num / g->stride, y_end = row_group_end(g, q);                 \
            for (int64_t y = q * g->up; y < y_end; ++y)                                     \
                for (int64_t tap = 0; tap < (g->K - r + g->stride - 1) / g->stride; ++tap, ++p) { \
                    const T *kr = m + kernel_row(g, n, grp, a, r + tap * g->stride, y);     \
                    for (int64_t j = 0; j < blocks; ++j) {                                  \
                        const int64_t c0 = j * VL - tap * g->up;                            \
                        T *at = tile + (j * pairs + p) * VL;                                \
                        if (c0 >= 0 && c0 + VL <= g->Wout) {                                \
                            memcpy(at, kr + c0, sizeof(T) * (size_t)VL);                    \
                            continue;                                                       \
                        }                                                                   \
                        for (int64_t l = 0; l < VL; ++l)                                    \
                            at[l] = c0 + l >= 0 && c0 + l < g->Wout ? kr[c0 + l] : (T)0;    \
                    }                                                                       \
                }                                                                           \
        }                                                                                   \
    return pairs;                                                                           \
}                                                                                           \
                                                                                            \
/* Add the fold rows (CBK channels fplane apart, phase r at + r * flen) onto the cb rows of \
 * source row sr: phase entry j = qc * up + u goes onto column qc * stride + r - pad_left. */ \
RS_INLINE void fold_onto_row_##SUFFIX(const geom_t *g, const T *fold, int64_t flen, T *grad_x, \
                                      int64_t n, int64_t c0, int64_t cb, int64_t sr) {      \
    const int64_t VL = VL_##SUFFIX, fplane = g->stride * flen;                              \
    const int64_t q_lo = g->pad_left > 0 ? g->pad_left : 0;                                 \
    const int64_t q_hi = g->pad_left + g->Win < g->Q ? g->pad_left + g->Win : g->Q;         \
    for (int64_t ci = 0; ci < cb; ++ci) {                                                   \
        T *gx = grad_x + source_row(g, n, c0 + ci, sr);                                     \
        const T *ph = fold + ci * fplane;                                                   \
        if (RS_HAVE_SHUFFLE && g->up == 2 && g->stride == 1) {                              \
            /* Column qc - pad_left sums entries 2 qc and 2 qc + 1. */                      \
            int64_t qc = q_lo;                                                              \
            for (; qc + VL <= q_hi; qc += VL) add_pair_sums_##SUFFIX(ph + 2 * qc, gx + qc - g->pad_left); \
            for (; qc < q_hi; ++qc) gx[qc - g->pad_left] += ph[2 * qc] + ph[2 * qc + 1];    \
            continue;                                                                       \
        }                                                                                   \
        /* Stride 2: the columns [done_lo, done_hi) of whole vectors of both phases. */     \
        int64_t done_lo = 0, done_hi = 0;                                                   \
        if (RS_HAVE_SHUFFLE && g->up == 1 && g->stride == 2) {                              \
            const T *even = ph, *odd = ph + flen;                                           \
            const int64_t qa = (g->pad_left + 1) / 2;                                       \
            int64_t qc = qa;                                                                \
            for (; qc + VL <= g->Q && 2 * (qc + VL) - g->pad_left <= g->Win; qc += VL)      \
                add_interleaved_##SUFFIX(even + qc, odd + qc, gx + 2 * qc - g->pad_left);   \
            done_lo = 2 * qa - g->pad_left; done_hi = 2 * qc - g->pad_left;                 \
        }                                                                                   \
        fold_columns_##SUFFIX(gx, ph, flen, g, 0, done_lo);                                 \
        fold_columns_##SUFFIX(gx, ph, flen, g, done_hi, g->Win);                            \
    }                                                                                       \
}                                                                                           \
                                                                                            \
/* d out / d features in gather form.  Tasks are (n, source row).  Phase r, entry j         \
 * gathers w * grad_out at output column j - up * (b / stride) over the taps b = r mod      \
 * stride of every output row that reads the source row (tap rows, then output rows, then   \
 * tap columns: the order of the forward's sums), CBK channels at once; the phases are      \
 * then folded back onto the row's columns, dropping entries whose source column lies       \
 * outside the image.  Every entry reads whole vectors from zero-padded rows, so no block   \
 * needs a mask (the padding's zeros stand where a tap's output column leaves the row):     \
 * the kernels come regrouped a tile at a time (source_row_weights), and the grad_out       \
 * rows a task reads are copied, a channel block at a time, into a ring of padded rows      \
 * that the consecutive tasks of a tile share (each row is copied about 1.5 times).         \
 * With stride 1 and 32 vector registers, source rows sr and sr + 1 go together: tap row    \
 * a of sr and tap row a + 1 of sr + 1 read the same output rows, so each ring vector feeds \
 * both rows' sums (16 accumulators), each row's sums still in its own order.               \
 * Every element of the tasks' grad_x rows is written. */                                   \
TARGET                                                                                      \
int reassemble_grad_features_##SUFFIX(const T *m, const T *grad_out, T *grad_x,             \
                                       const int64_t *gp, int64_t task_begin,               \
                                       int64_t task_end) {                                  \
    geom_t g = read_geom(gp);                                                               \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                            \
    const int64_t VL = VL_##SUFFIX, flen = fold_len_##SUFFIX(&g), fplane = g.stride * flen; \
    /* Ring rows: entries reach up * ((K - 1) / stride) columns left of a row and a vector past \
     * its phases. */                                                                       \
    const int64_t left = g.up * ((g.K - 1) / g.stride);                                     \
    const int64_t row = left + (g.Wout > g.phase_len + VL ? g.Wout : g.phase_len + VL);     \
    /* Output rows a pair of tasks reads: ceil(K / stride) + 1 row groups of up rows, consecutive. */ \
    const int64_t ring_rows = ((g.K + g.stride - 1) / g.stride + 1) * g.up;                 \
    scratch_##SUFFIX s;                                                                     \
    if (!scratch_alloc_##SUFFIX(&s, &g)) return RS_NO_MEMORY;                               \
    ring_##SUFFIX ring = {(T *)calloc((size_t)(CBK * ring_rows * row), sizeof(T)),          \
                          (int64_t *)malloc(sizeof(int64_t) * (size_t)ring_rows), ring_rows, row, left, \
                          ring_rows * row};                                                 \
    if (!ring.rows || !ring.tag) { free(ring.rows); free(ring.tag); scratch_free_##SUFFIX(&s); return RS_NO_MEMORY; } \
    const int64_t cr = ring.channel;                                                        \
    T *fold_next = s.fold + CBK * fplane; /* the second row of a pair */                    \
    /* The tile's regrouped kernels: at most K * K * up (entry, tap) pairs a source row. */ \
    const int64_t blocks = (g.phase_len + VL - 1) / VL, task_w = g.K * g.K * g.up * blocks * VL; \
    const int64_t tile = tile_tasks_##SUFFIX(task_w);                                       \
    int64_t pairs_of[RS_TILE];                                                              \
    void *wt_block = malloc(sizeof(T) * (size_t)(tile * task_w) + 64);                      \
    T *wt = (T *)rs_align64(wt_block);                                                      \
    if (!wt_block) { free(ring.rows); free(ring.tag); scratch_free_##SUFFIX(&s); return RS_NO_MEMORY; } \
    /* Tiles of RS_TILE source rows: per channel block, the ring carries the shared         \
     * grad_out rows from one task to the next and stays in cache (CBK channels), while     \
     * the tile's kernel rows stay in cache across the channel blocks. */                   \
    for (int64_t t0 = task_begin; t0 < task_end; t0 += tile) {                              \
    const int64_t t1 = t0 + tile < task_end ? t0 + tile : task_end;                         \
    for (int64_t c0 = 0, cb = 0; c0 < g.C; c0 += cb) {                                      \
        const int64_t grp = c0 / g.Cg, group_end = (grp + 1) * g.Cg;                        \
        cb = group_end - c0 < CBK ? group_end - c0 : CBK;                                   \
        if (c0 % g.Cg == 0)                                                                 \
            for (int64_t task = t0; task < t1; ++task)                                      \
                pairs_of[task - t0] = source_row_weights_##SUFFIX(wt + (task - t0) * task_w, m, &g, task / g.Hin, grp, \
                                                                  task % g.Hin);            \
        for (int64_t k = 0; k < ring_rows; ++k) ring.tag[k] = -1;                           \
        for (int64_t task = t0, done = 1; task < t1; task += done) {                        \
            const int64_t n = task / g.Hin, sr = task % g.Hin;                              \
            done = 1;                                                                       \
            /* Every column of the task's rows is written: zero, then the folded sums. */   \
            for (int64_t ci = 0; ci < cb; ++ci)                                             \
                memset(grad_x + source_row(&g, n, c0 + ci, sr), 0, sizeof(T) * (size_t)g.Win); \
            if (RS_PAIR_ROWS_##SUFFIX && g.stride == 1 && g.K > 1 && cb == CBK && task + 1 < t1 && sr + 1 < g.Hin) { \
                const int64_t count = source_row_entries_##SUFFIX(&s, &ring, &g, grad_out, n, sr, c0, cb, 0, NULL); \
                const int64_t next = source_row_entries_##SUFFIX(&s, &ring, &g, grad_out, n, sr + 1, c0, cb, count, NULL); \
                /* Tap row 0 of sr + 1 (group sr + 1 + pad_top) has no partner in sr, tap row \
                 * K - 1 of sr (group sr + pad_top - K + 1) none in sr + 1. */              \
                const int64_t q_first = sr + 1 + g.pad_top, q_last = sr + g.pad_top - (g.K - 1); \
                const int64_t lead = q_first < g.Hq ? row_group_end(&g, q_first) - q_first * g.up : 0; \
                const int64_t trail = q_last >= 0 && q_last < g.Hq ? row_group_end(&g, q_last) - q_last * g.up : 0; \
                const int64_t shared = count - trail;                                       \
                if (shared == next - lead && shared >= 0) {                                 \
                    for (int64_t ci = 0; ci < cb; ++ci)                                     \
                        memset(grad_x + source_row(&g, n, c0 + ci, sr + 1), 0, sizeof(T) * (size_t)g.Win); \
                    for (int64_t j0 = 0; j0 < g.phase_len; j0 += VL) {                      \
                        const T *wj = wt + (task - t0) * task_w + j0 / VL * pairs_of[task - t0] * VL; \
                        const T *wn = wt + (task + 1 - t0) * task_w + j0 / VL * pairs_of[task + 1 - t0] * VL; \
                        const T *gj = ring.rows + j0;                                       \
                        RS_PAIR_ZERO8(vec_##SUFFIX);                                        \
                        for (int64_t e = count; e < count + lead; ++e) {                    \
                            const T *wp = wn + s.tap_rw[e], *gs = gj + s.tap_o[e];          \
                            for (int64_t tap = 0; tap < g.K; ++tap) {                       \
                                const vec_##SUFFIX wv = load_##SUFFIX(wp + tap * VL);       \
                                RS_MADD8_INTO(bcc, load_##SUFFIX, wv, gs - tap * g.up, cr); \
                            }                                                               \
                        }                                                                   \
                        for (int64_t i = 0; i < shared; ++i) {                              \
                            const T *wa = wj + s.tap_rw[i], *wb = wn + s.tap_rw[count + lead + i]; \
                            const T *gs = gj + s.tap_o[i];                                  \
                            for (int64_t tap = 0; tap < g.K; ++tap) {                       \
                                const vec_##SUFFIX w0 = load_##SUFFIX(wa + tap * VL), w1 = load_##SUFFIX(wb + tap * VL); \
                                RS_PAIR_MADD8(vec_##SUFFIX, load_##SUFFIX, w0, w1, gs - tap * g.up, cr); \
                            }                                                               \
                        }                                                                   \
                        for (int64_t e = shared; e < count; ++e) {                          \
                            const T *wp = wj + s.tap_rw[e], *gs = gj + s.tap_o[e];          \
                            for (int64_t tap = 0; tap < g.K; ++tap) {                       \
                                const vec_##SUFFIX wv = load_##SUFFIX(wp + tap * VL);       \
                                RS_MADD8(load_##SUFFIX, wv, gs - tap * g.up, cr);           \
                            }                                                               \
                        }                                                                   \
                        T *f = s.fold + j0;                                                 \
                        RS_STORE8(f, fplane);                                               \
                        T *fn = fold_next + j0;                                             \
                        RS_STORE8_TO(fn, fplane, bcc);                                      \
                    }                                                                       \
                    fold_onto_row_##SUFFIX(&g, s.fold, flen, grad_x, n, c0, cb, sr);        \
                    fold_onto_row_##SUFFIX(&g, fold_next, flen, grad_x, n, c0, cb, sr + 1); \
                    done = 2;                                                               \
                    continue;                                                               \
                }                                                                           \
            }                                                                               \
            const int64_t count = source_row_entries_##SUFFIX(&s, &ring, &g, grad_out, n, sr, c0, cb, 0, s.r_start); \
            if (count == 0) continue;                                                       \
            /* Entry e, its i-th tap (tap column r + i stride): regrouped weights at        \
             * tap_rw[e] + i VL in the block's stream, ring row ring + tap_o[e] - i up.  Each vector of the phases sums all entries' \
             * taps in registers (an entry's ring reads are shifts of one row) and goes to the \
             * fold rows once: the same order of sums as tap by tap.                        \
             * A block of fewer channels than its accumulators reads the ring's other slots \
             * in the unused ones (computed, never stored). */                              \
            for (int64_t r = 0; r < g.stride; ++r) {                                        \
                const int64_t first = s.r_start[r], last = s.r_start[r + 1];                \
                const int64_t taps_per_entry = (g.K - r + g.stride - 1) / g.stride;         \
                T *fold = s.fold + r * flen;                                                \
                if (first == last) {                                                        \
                    for (int64_t ci = 0; ci < CBK; ++ci) memset(fold + ci * fplane, 0, sizeof(T) * (size_t)flen); \
                    continue;                                                               \
                }                                                                           \
                for (int64_t j0 = 0; j0 < g.phase_len; j0 += VL) {                          \
                    T *f = fold + j0;                                                       \
                    const T *wj = wt + (task - t0) * task_w + j0 / VL * pairs_of[task - t0] * VL; \
                    if (cb > CB)                                                            \
                        RS_ENTRY_TAPS(8, vec_##SUFFIX, load_##SUFFIX, f, fplane, first, last, taps_per_entry, \
                                      wj, s.tap_rw, VL, ring.rows + j0, s.tap_o, g.up, cr); \
                    else                                                                    \
                        RS_ENTRY_TAPS(4, vec_##SUFFIX, load_##SUFFIX, f, fplane, first, last, taps_per_entry, \
                                      wj, s.tap_rw, VL, ring.rows + j0, s.tap_o, g.up, cr); \
                }                                                                           \
            }                                                                               \
            fold_onto_row_##SUFFIX(&g, s.fold, flen, grad_x, n, c0, cb, sr);                \
        }                                                                                   \
    }                                                                                       \
    }                                                                                       \
    free(ring.rows); free(ring.tag); free(wt_block);                                        \
    scratch_free_##SUFFIX(&s);                                                              \
    return RS_OK;                                                                           \
}

RS_EACH_LEVEL(DEFINE_KERNELS, float, int32_t, f32)
RS_EACH_LEVEL(DEFINE_KERNELS, double, int64_t, f64)

/*
 * Pixel-major (channels-last) plain kernels: the sums of the kernels above on
 * N x H x W x C features and outputs and N x H x W x (G K^2) kernels, with the channels of
 * a group contiguous, so that each tap is one run of whole vectors.  A tap whose source
 * pixel lies outside the image is skipped, as above.  They differ from the plane-major
 * kernels only in the order of the sums.
 */

/* The taps of output pixel (y, xo) whose source pixel is inside the image: tap index
 * a K + b and the offset of the source pixel's first channel in its (pixel-major) image;
 * returns their count. */
static int64_t pixel_taps(const geom_t *g, int64_t y, int64_t xo, int64_t *tap, int64_t *src) {
    const int64_t r0 = (y / g->up) * g->stride - g->pad_top;
    const int64_t c0 = (xo / g->up) * g->stride - g->pad_left;
    int64_t count = 0;
    for (int64_t a = 0; a < g->K; ++a) {
        const int64_t sr = r0 + a;
        if (sr < 0 || sr >= g->Hin) continue;
        for (int64_t b = 0; b < g->K; ++b) {
            const int64_t sc = c0 + b;
            if (sc < 0 || sc >= g->Win) continue;
            tap[count] = a * g->K + b;
            src[count] = (sr * g->Win + sc) * g->C;
            ++count;
        }
    }
    return count;
}

/* The output pixels that read source pixel (sr, sc) of image n, and through which tap:
 * pixel index among all N x Hout x Wout pixels and tap index, in the order (a, b, y, x);
 * returns their count (at most K^2 up^2). */
static int64_t pixel_readers(const geom_t *g, int64_t n, int64_t sr, int64_t sc, int64_t *at, int64_t *tap) {
    int64_t count = 0;
    for (int64_t a = 0; a < g->K; ++a) {
        const int64_t rows = sr + g->pad_top - a;
        if (rows < 0 || rows % g->stride) continue;
        const int64_t y0 = rows / g->stride * g->up, y1 = y0 + g->up < g->Hout ? y0 + g->up : g->Hout;
        for (int64_t b = 0; b < g->K; ++b) {
            const int64_t cols = sc + g->pad_left - b;
            if (cols < 0 || cols % g->stride) continue;
            const int64_t x0 = cols / g->stride * g->up, x1 = x0 + g->up < g->Wout ? x0 + g->up : g->Wout;
            for (int64_t y = y0; y < y1; ++y)
                for (int64_t xo = x0; xo < x1; ++xo) {
                    at[count] = (n * g->Hout + y) * g->Wout + xo;
                    tap[count] = a * g->K + b;
                    ++count;
                }
        }
    }
    return count;
}

#define DEFINE_PIXEL_KERNELS(T, IT, SUFFIX, TARGET)                                                            \
/* dst[c] = sum_i w[i] * src_i[c] for c < width, over `count` rows src_i = base + offset[i]:        \
 * four vectors of channels at a time in registers, then two, then one, the last partial. */             \
RS_INLINE void weighted_rows_##SUFFIX(T *dst, const T *base, const int64_t *offset, const T *w,     \
                                      int64_t count, int64_t width) {                               \
    const int64_t VL = VL_##SUFFIX;                                                                 \
    int64_t c = 0;                                                                                  \
    for (; c + 4 * VL <= width; c += 4 * VL) {                                                      \
        RS_ACC_ZERO(vec_##SUFFIX);                                                                  \
        for (int64_t i = 0; i < count; ++i) {                                                       \
            const T *p = base + offset[i] + c;                                                      \
            acc0 += w[i] * load_##SUFFIX(p);                                                        \
            acc1 += w[i] * load_##SUFFIX(p + VL);                                                   \
            acc2 += w[i] * load_##SUFFIX(p + 2 * VL);                                               \
            acc3 += w[i] * load_##SUFFIX(p + 3 * VL);                                               \
        }                                                                                           \
        memcpy(dst + c, &acc0, sizeof acc0);                                                        \
        memcpy(dst + c + VL, &acc1, sizeof acc1);                                                   \
        memcpy(dst + c + 2 * VL, &acc2, sizeof acc2);                                               \
        memcpy(dst + c + 3 * VL, &acc3, sizeof acc3);                                               \
    }                                                                                               \
    if (c + 2 * VL <= width) {                                                                      \
        vec_##SUFFIX acc0 = {0}, acc1 = {0};                                                        \
        for (int64_t i = 0; i < count; ++i) {                                                       \
            const T *p = base + offset[i] + c;                                                      \
            acc0 += w[i] * load_##SUFFIX(p);                                                        \
            acc1 += w[i] * load_##SUFFIX(p + VL);                                                   \
        }                                                                                           \
        memcpy(dst + c, &acc0, sizeof acc0);                                                        \
        memcpy(dst + c + VL, &acc1, sizeof acc1);                                                   \
        c += 2 * VL;                                                                                \
    }                                                                                               \
    for (; c < width; c += VL) {                                                                    \
        const int64_t lanes = width - c < VL ? width - c : VL;                                      \
        vec_##SUFFIX acc = {0};                                                                     \
        for (int64_t i = 0; i < count; ++i) acc += w[i] * load_part_##SUFFIX(base + offset[i] + c, 0, lanes); \
        store_part_##SUFFIX(dst + c, acc, 0, lanes);                                                \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* The four sums over the lanes of a, b, c and d, in lanes 0, VL/4, VL/2 and 3 VL/4:       \
 * halves added pairwise, then quarters, then within the quarters (a fixed order, and        \
 * about two shuffles a sum instead of a tree for each). */                                        \
RS_INLINE vec_##SUFFIX lane_sums4_##SUFFIX(vec_##SUFFIX a, vec_##SUFFIX b, vec_##SUFFIX c,         \
                                           vec_##SUFFIX d) {                                       \
    enum { L = VL_##SUFFIX, H = VL_##SUFFIX / 2, Q = VL_##SUFFIX / 4 };                             \
    ivec_##SUFFIX lo, hi, lo2, hi2;                                                                 \
    for (int i = 0; i < L; ++i) {                                                                   \
        const int half = i / H, j = i % H;                                                          \
        lo[i] = (IT)(half * L + j); hi[i] = (IT)(half * L + H + j);                                 \
        const int src = i / Q, k = i % Q;                                                           \
        const int base = (src / 2) * L + (src % 2) * H;                                             \
        lo2[i] = (IT)(base + k); hi2[i] = (IT)(base + Q + k);                                       \
    }                                                                                               \
    const vec_##SUFFIX ab = __builtin_shuffle(a, b, lo) + __builtin_shuffle(a, b, hi);              \
    const vec_##SUFFIX cd = __builtin_shuffle(c, d, lo) + __builtin_shuffle(c, d, hi);              \
    vec_##SUFFIX q = __builtin_shuffle(ab, cd, lo2) + __builtin_shuffle(ab, cd, hi2);               \
    for (int step = Q / 2; step > 0; step /= 2) {                                                   \
        ivec_##SUFFIX x;                                                                            \
        for (int i = 0; i < L; ++i) x[i] = (IT)(i ^ step);                                          \
        q += __builtin_shuffle(q, x);                                                               \
    }                                                                                               \
    return q;                                                                                       \
}                                                                                                   \
                                                                                                    \
/* out[t] = sum_c v[c] * rows_t[c] over c < width for the `count` rows rows_t = base +        \
 * offset[t]: four rows at a time share each load of v; the channels run in whole vectors     \
 * (the last one zero-filled), then lane_sums4 sums the lanes. */                                  \
RS_INLINE void row_dots_##SUFFIX(T *out, const T *v, const T *base, const int64_t *offset,         \
                                 const int64_t *slot, int64_t count, int64_t width) {              \
    const int64_t VL = VL_##SUFFIX;                                                                 \
    for (int64_t t = 0; t < count; t += 4) {                                                        \
        const int64_t last = count - 1;                                                             \
        const T *r0 = base + offset[t], *r1 = base + offset[t + 1 < count ? t + 1 : last];          \
        const T *r2 = base + offset[t + 2 < count ? t + 2 : last];                                  \
        const T *r3 = base + offset[t + 3 < count ? t + 3 : last];                                  \
        vec_##SUFFIX a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                        \
        int64_t c = 0;                                                                              \
        for (; c + VL <= width; c += VL) {                                                          \
            const vec_##SUFFIX vv = load_##SUFFIX(v + c);                                           \
            a0 += vv * load_##SUFFIX(r0 + c); a1 += vv * load_##SUFFIX(r1 + c);                     \
            a2 += vv * load_##SUFFIX(r2 + c); a3 += vv * load_##SUFFIX(r3 + c);                     \
        }                                                                                           \
        if (c < width) {                                                                            \
            const int64_t n = width - c;                                                            \
            const vec_##SUFFIX vv = load_part_##SUFFIX(v + c, 0, n);                                \
            a0 += vv * load_part_##SUFFIX(r0 + c, 0, n); a1 += vv * load_part_##SUFFIX(r1 + c, 0, n); \
            a2 += vv * load_part_##SUFFIX(r2 + c, 0, n); a3 += vv * load_part_##SUFFIX(r3 + c, 0, n); \
        }                                                                                           \
        const vec_##SUFFIX sums = lane_sums4_##SUFFIX(a0, a1, a2, a3);                              \
        for (int64_t i = 0; i < 4 && t + i < count; ++i) out[slot[t + i]] = sums[i * (VL / 4)];     \
    }                                                                                               \
}                                                                                                   \
                                                                                                    \
/* out[n, y, x, c] = sum_t m[n, y, x, g K^2 + t] x[n, source of t, c]: every element of out        \
 * is written.  Tasks are output rows (n, y). */                                                   \
TARGET                                                                                              \
int reassemble_forward_pixels_##SUFFIX(const T *x, const T *m, T *out, const int64_t *gp,          \
                                       int64_t task_begin, int64_t task_end) {                      \
    geom_t g = read_geom(gp);                                                                       \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                                    \
    const int64_t k2 = g.K * g.K, C = g.C, Cg = g.Cg;                                               \
    int64_t *tap = malloc(sizeof(int64_t) * (size_t)(2 * k2));                                      \
    T *w = malloc(sizeof(T) * (size_t)k2);                                                          \
    if (!tap || !w) { free(tap); free(w); return RS_NO_MEMORY; }                                    \
    int64_t *src = tap + k2;                                                                        \
    for (int64_t task = task_begin; task < task_end; ++task) {                                      \
        const int64_t n = task / g.Hout, y = task % g.Hout;                                         \
        const T *image = x + n * g.Hin * g.Win * C;                                                 \
        for (int64_t xo = 0; xo < g.Wout; ++xo) {                                                   \
            const int64_t at = (n * g.Hout + y) * g.Wout + xo;                                      \
            const int64_t taps = pixel_taps(&g, y, xo, tap, src);                                   \
            for (int64_t grp = 0; grp < g.G; ++grp) {                                               \
                const T *mg = m + (at * g.G + grp) * k2;                                            \
                for (int64_t t = 0; t < taps; ++t) w[t] = mg[tap[t]];                               \
                weighted_rows_##SUFFIX(out + at * C + grp * Cg, image + grp * Cg, src, w, taps, Cg); \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    free(tap); free(w);                                                                             \
    return RS_OK;                                                                                   \
}                                                                                                   \
                                                                                                    \
/* grad_m[n, y, x, g K^2 + t] = sum_{c in g} grad_out[n, y, x, c] x[n, source of t, c] for the     \
 * taps inside the image (the caller zeroes grad_m).  Tasks are output rows (n, y). */            \
TARGET                                                                                              \
int reassemble_grad_kernels_pixels_##SUFFIX(const T *x, const T *grad_out, T *grad_m,              \
                                            const int64_t *gp, int64_t task_begin,                  \
                                            int64_t task_end) {                                     \
    geom_t g = read_geom(gp);                                                                       \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                                    \
    const int64_t k2 = g.K * g.K, C = g.C, Cg = g.Cg;                                               \
    int64_t *tap = malloc(sizeof(int64_t) * (size_t)(2 * k2));                                      \
    if (!tap) return RS_NO_MEMORY;                                                                  \
    int64_t *src = tap + k2;                                                                        \
    for (int64_t task = task_begin; task < task_end; ++task) {                                      \
        const int64_t n = task / g.Hout, y = task % g.Hout;                                         \
        const T *image = x + n * g.Hin * g.Win * C;                                                 \
        for (int64_t xo = 0; xo < g.Wout; ++xo) {                                                   \
            const int64_t at = (n * g.Hout + y) * g.Wout + xo;                                      \
            const int64_t taps = pixel_taps(&g, y, xo, tap, src);                                   \
            for (int64_t grp = 0; grp < g.G; ++grp)                                                 \
                row_dots_##SUFFIX(grad_m + (at * g.G + grp) * k2, grad_out + at * C + grp * Cg,     \
                                  image + grp * Cg, src, tap, taps, Cg);                            \
        }                                                                                           \
    }                                                                                               \
    free(tap);                                                                                      \
    return RS_OK;                                                                                   \
}                                                                                                   \
                                                                                                    \
/* grad_x[n, r, s, c] = sum over the output pixels p and taps t that read (r, s) of               \
 * m[n, p, g K^2 + t] grad_out[n, p, c], gathered (no two tasks write one element, and every      \
 * element sums in one order whatever the threads): every element of grad_x is written.           \
 * Tasks are source rows (n, r). */                                                                \
TARGET                                                                                              \
int reassemble_grad_features_pixels_##SUFFIX(const T *m, const T *grad_out, T *grad_x,             \
                                             const int64_t *gp, int64_t task_begin,                 \
                                             int64_t task_end) {                                    \
    geom_t g = read_geom(gp);                                                                       \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                                    \
    const int64_t k2 = g.K * g.K, C = g.C, Cg = g.Cg, most = k2 * g.up * g.up;                      \
    int64_t *at = malloc(sizeof(int64_t) * (size_t)(3 * most));                                     \
    T *w = malloc(sizeof(T) * (size_t)most);                                                        \
    if (!at || !w) { free(at); free(w); return RS_NO_MEMORY; }                                      \
    int64_t *tap = at + most, *row = at + 2 * most;                                                 \
    for (int64_t task = task_begin; task < task_end; ++task) {                                      \
        const int64_t n = task / g.Hin, sr = task % g.Hin;                                          \
        for (int64_t sc = 0; sc < g.Win; ++sc) {                                                    \
            const int64_t readers = pixel_readers(&g, n, sr, sc, at, tap);                          \
            for (int64_t i = 0; i < readers; ++i) row[i] = at[i] * C;                               \
            T *gx = grad_x + ((n * g.Hin + sr) * g.Win + sc) * C;                                   \
            for (int64_t grp = 0; grp < g.G; ++grp) {                                               \
                for (int64_t i = 0; i < readers; ++i) w[i] = m[(at[i] * g.G + grp) * k2 + tap[i]];  \
                weighted_rows_##SUFFIX(gx + grp * Cg, grad_out + grp * Cg, row, w, readers, Cg);    \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    free(at); free(w);                                                                              \
    return RS_OK;                                                                                   \
}

RS_EACH_LEVEL_NOWIDTH(DEFINE_PIXEL_KERNELS, float, int32_t, f32)
RS_EACH_LEVEL_NOWIDTH(DEFINE_PIXEL_KERNELS, double, int64_t, f64)

/* Taps sampled at offsets (``offsets=`` of reassemble and window_similarity): tap t of
 * group g at output pixel (y, x) reads the source bilinearly, zero outside the image, at
 * row (y / up) * stride + a - pad_top + off[n, 2 (g K^2 + t) + 1, y, x] and column
 * (x / up) * stride + b - pad_left + off[n, 2 (g K^2 + t), y, x] (pixel centres at
 * integers), as grid_sample with align_corners=False and zero padding reads it.  The
 * kernels take every tensor pixel-major (channels last): the sampled one with a one-pixel
 * zero border (N x Hin+2 x Win+2 x C), so each corner is one contiguous run of a group's
 * channels and corners outside the image read zeros; per-channel maps N x Hout x Wout x C;
 * kernels and per-tap results N x Hout x Wout x (G K^2); offsets N x Hout x Wout x
 * (2 G K^2), column then row for each tap.  One pixel's taps are then one contiguous run
 * (the NCHW layout of the API would touch 3 G K^2 planes a pixel).  Three kernels, each
 * writing only what its task owns (no atomics, results independent of the thread count):
 *   offset_forward    out = sum_t m_t * S_t(x)                      (the reassembly)
 *   offset_correlate  dot_t = sum_c v_c * S_t(x)_c, and optionally d dot_t / d offsets
 *                     (the window similarity, and the kernel and offset gradients)
 *   offset_scatter    grad_x = sum_t S_t^T(m_t * v)                 (the feature gradient)
 * A tap with no corner inside the image contributes nothing, whatever its weight (as the
 * plain kernels treat taps outside the image). */
/* Strides of the offset kernels' padded pixel-major images, in elements. */
typedef struct {
    int64_t k2;    /* taps a group */
    int64_t row;   /* one padded row: (Win + 2) * C */
    int64_t image; /* one padded image: (Hin + 2) * row */
} offset_strides_t;

static offset_strides_t offset_strides(const geom_t *g) {
    offset_strides_t st;
    st.k2 = g->K * g->K;
    st.row = (g->Win + 2) * g->C;
    st.image = (g->Hin + 2) * st.row;
    return st;
}

#define DEFINE_OFFSET_KERNELS(T, SUFFIX, TARGET)                                                            \
/* Where a tap reads: `o` points at its (column, row) offsets, `row` and `col` are its              \
 * whole-pixel grid position.  Gives the index of the top-left corner among the pixels of           \
 * the padded plane ((Hin + 2) x (Win + 2), one zero pixel on every side) and the                   \
 * fractions; returns 0 when no corner lies inside the image (a position outside                    \
 * [-1, W) x [-1, H), or not finite): that tap contributes nothing.  Corners outside the            \
 * image read the padding's zeros (a scatter into them is dropped). */                              \
RS_INLINE int offset_corner_##SUFFIX(const geom_t *g, const T *o, int64_t row, int64_t col, int64_t *pixel,\
                                     T *fx, T *fy) {                                                \
    const T px = (T)col + o[0], py = (T)row + o[1];                                                 \
    if (!(px >= (T)-1 && px < (T)g->Win && py >= (T)-1 && py < (T)g->Hin)) return 0;                \
    int64_t x0 = (int64_t)px, y0 = (int64_t)py;                                                     \
    if ((T)x0 > px) --x0;                                                                           \
    if ((T)y0 > py) --y0;                                                                           \
    *fx = px - (T)x0;                                                                               \
    *fy = py - (T)y0;                                                                               \
    *pixel = (y0 + 1) * (g->Win + 2) + x0 + 1;                                                      \
    return 1;                                                                                       \
}                                                                                                   \
                                                                                                    \
/* The first grid row and column of an output pixel's window (divisions hoisted out of              \
 * the tap loops). */                                                                               \
RS_INLINE int64_t window_row_##SUFFIX(const geom_t *g, int64_t y) { return (y / g->up) * g->stride - g->pad_top; }\
RS_INLINE int64_t window_col_##SUFFIX(const geom_t *g, int64_t x) { return (x / g->up) * g->stride - g->pad_left; }\
                                                                                                    \
/* The valid taps of one output pixel and group: the offset of each one's top-left corner           \
 * in the padded image (in elements, the group's first channel), its bilinear weights and           \
 * its kernel weight. */                                                                            \
typedef struct {                                                                                    \
    int64_t *base;                                                                                  \
    T *b00, *b01, *b10, *b11, *w;                                                                   \
} offset_taps_##SUFFIX;                                                                             \
                                                                                                    \
static int offset_taps_alloc_##SUFFIX(offset_taps_##SUFFIX *s, int64_t k2) {                        \
    const size_t n = (size_t)(k2 > 0 ? k2 : 1);                                                     \
    s->base = malloc(n * sizeof(int64_t));                                                          \
    T *block = malloc(5 * n * sizeof(T));                                                           \
    if (!s->base || !block) { free(s->base); free(block); return 0; }                               \
    s->b00 = block; s->b01 = block + n; s->b10 = block + 2 * n; s->b11 = block + 3 * n; s->w = block + 4 * n;\
    return 1;                                                                                       \
}                                                                                                   \
                                                                                                    \
static void offset_taps_free_##SUFFIX(offset_taps_##SUFFIX *s) { free(s->base); free(s->b00); }     \
                                                                                                    \
/* out[n, y, x, c] = sum_t m[n, y, x, g K^2 + t] * bilinear(x[n, :, :, c], position of t):          \
 * x is N x (Hin+2) x (Win+2) x C (zero border), out N x Hout x Wout x C.                           \
 * Whole vectors of channels sum the taps in registers; out is zeroed by the caller.  Tasks         \
 * are output rows (n, y); `unused` is NULL. */                                                     \
TARGET                                                                                              \
int reassemble_offset_forward_##SUFFIX(const T *x, const T *m, const T *off, T *out, T *unused,     \
                                       const int64_t *gp, int64_t task_begin, int64_t task_end) {   \
    (void)unused;                                                                                   \
    geom_t g = read_geom(gp);                                                                       \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                                    \
    const offset_strides_t st = offset_strides(&g);                                                 \
    const int64_t k2 = st.k2, C = g.C, Cg = g.Cg, row = st.row, image = st.image;                   \
    offset_taps_##SUFFIX s;                                                                         \
    if (!offset_taps_alloc_##SUFFIX(&s, k2)) return RS_NO_MEMORY;                                   \
    for (int64_t task = task_begin; task < task_end; ++task) {                                      \
        const int64_t n = task / g.Hout, y = task % g.Hout;                                         \
        const int64_t row0 = window_row_##SUFFIX(&g, y);                                            \
        for (int64_t xo = 0; xo < g.Wout; ++xo) {                                                   \
            const int64_t at = (n * g.Hout + y) * g.Wout + xo, col0 = window_col_##SUFFIX(&g, xo);  \
            T *restrict o = out + at * C;                                                           \
            for (int64_t grp = 0; grp < g.G; ++grp) {                                               \
                int64_t taps = 0;                                                                   \
                for (int64_t a = 0; a < g.K; ++a) for (int64_t b = 0; b < g.K; ++b) {               \
                    const int64_t t = a * g.K + b;                                                  \
                    int64_t pixel; T fx, fy;                                                        \
                    const T *ot = off + (at * g.G * k2 + grp * k2 + t) * 2;                         \
                    if (!offset_corner_##SUFFIX(&g, ot, row0 + a, col0 + b, &pixel, &fx, &fy)) continue;\
                    s.base[taps] = n * image + pixel * C + grp * Cg;                                \
                    s.b00[taps] = ((T)1 - fx) * ((T)1 - fy); s.b01[taps] = fx * ((T)1 - fy);        \
                    s.b10[taps] = ((T)1 - fx) * fy; s.b11[taps] = fx * fy;                          \
                    s.w[taps] = m[at * g.G * k2 + grp * k2 + t];                                    \
                    ++taps;                                                                         \
                }                                                                                   \
                const int64_t *restrict base = s.base;                                              \
                const T *restrict b00 = s.b00, *restrict b01 = s.b01, *restrict b10 = s.b10;        \
                const T *restrict b11 = s.b11, *restrict w = s.w;                                   \
                T *restrict og = o + grp * Cg;                                                      \
                /* Whole vectors of channels: the sum over the taps stays in a register. */         \
                int64_t c = 0;                                                                      \
                for (; c + VL_##SUFFIX <= Cg; c += VL_##SUFFIX) {                                   \
                    vec_##SUFFIX acc = {0};                                                         \
                    for (int64_t i = 0; i < taps; ++i) {                                            \
                        const T *p = x + base[i] + c;                                               \
                        acc += w[i] * (b00[i] * load_##SUFFIX(p) + b01[i] * load_##SUFFIX(p + C) +  \
                                       b10[i] * load_##SUFFIX(p + row) + b11[i] * load_##SUFFIX(p + row + C));\
                    }                                                                               \
                    memcpy(og + c, &acc, sizeof acc);                                               \
                }                                                                                   \
                /* The last channels (fewer than a vector): tap by tap into the zeroed output. */   \
                const int64_t rest = Cg - c;                                                        \
                for (int64_t i = 0; i < taps; ++i) {                                                \
                    const T *restrict p00 = x + base[i] + c, *restrict p01 = p00 + C;               \
                    const T *restrict p10 = p00 + row, *restrict p11 = p10 + C;                     \
                    T *restrict tail = og + c;                                                      \
                    for (int64_t j = 0; j < rest; ++j)                                              \
                        tail[j] += w[i] * (b00[i] * p00[j] + b01[i] * p01[j] + b10[i] * p10[j] + b11[i] * p11[j]);\
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    offset_taps_free_##SUFFIX(&s);                                                                  \
    return RS_OK;                                                                                   \
}                                                                                                   \
                                                                                                    \
/* dot[n, y, x, g K^2 + t] = sum_{c in g} v[n, y, x, c] * bilinear(x[n, :, :, c], position of t)    \
 * and, when `deriv` is not NULL, its derivatives along the column and the row offsets,             \
 * deriv[n, y, x, 2 (g K^2 + t) + {0, 1}]; x padded as for the forward, v N x Hout x Wout x C.  Tasks are output rows (n, y); both outputs are zeroed by the caller. */\
TARGET                                                                                              \
int reassemble_offset_correlate_##SUFFIX(const T *x, const T *v, const T *off, T *dot, T *deriv,    \
                                         const int64_t *gp, int64_t task_begin, int64_t task_end) { \
    geom_t g = read_geom(gp);                                                                       \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                                    \
    const offset_strides_t st = offset_strides(&g);                                                 \
    const int64_t k2 = st.k2, C = g.C, Cg = g.Cg, row = st.row, image = st.image;                   \
    for (int64_t task = task_begin; task < task_end; ++task) {                                      \
        const int64_t n = task / g.Hout, y = task % g.Hout;                                         \
        const int64_t row0 = window_row_##SUFFIX(&g, y);                                            \
        for (int64_t xo = 0; xo < g.Wout; ++xo) {                                                   \
            const int64_t pix = (n * g.Hout + y) * g.Wout + xo, col0 = window_col_##SUFFIX(&g, xo); \
            const T *vp = v + pix * C;                                                              \
            for (int64_t grp = 0; grp < g.G; ++grp) {                                               \
                for (int64_t a = 0; a < g.K; ++a) for (int64_t b = 0; b < g.K; ++b) {               \
                    const int64_t t = a * g.K + b;                                                  \
                    int64_t pixel; T fx, fy;                                                        \
                    const int64_t at = pix * g.G * k2 + grp * k2 + t;                               \
                    if (!offset_corner_##SUFFIX(&g, off + 2 * at, row0 + a, col0 + b, &pixel, &fx, &fy))\
                        continue;                                                                   \
                    const T *restrict p00 = x + n * image + pixel * C + grp * Cg;                   \
                    const T *restrict p01 = p00 + C, *restrict p10 = p00 + row, *restrict p11 = p10 + C;\
                    const T *restrict vg = vp + grp * Cg;                                           \
                    if (!deriv) {                                                                   \
                        const T b00 = ((T)1 - fx) * ((T)1 - fy), b01 = fx * ((T)1 - fy);            \
                        const T b10 = ((T)1 - fx) * fy, b11 = fx * fy;                              \
                        T sum = 0;                                                                  \
                        _Pragma("omp simd reduction(+ : sum)")                                      \
                        for (int64_t c = 0; c < Cg; ++c)                                            \
                            sum += vg[c] * (b00 * p00[c] + b01 * p01[c] + b10 * p10[c] + b11 * p11[c]);\
                        dot[at] = sum;                                                              \
                        continue;                                                                   \
                    }                                                                               \
                    T sum = 0, dcol = 0, drow = 0;                                                  \
                    _Pragma("omp simd reduction(+ : sum, dcol, drow)")                              \
                    for (int64_t c = 0; c < Cg; ++c) {                                              \
                        const T left = p10[c] - p00[c], right = p11[c] - p01[c];                    \
                        const T upper = p01[c] - p00[c], lower = p11[c] - p10[c];                   \
                        const T top = p00[c] + fx * upper;                                          \
                        sum += vg[c] * (top + fy * (left + fx * (right - left)));                   \
                        dcol += vg[c] * (upper + fy * (lower - upper));                             \
                        drow += vg[c] * (left + fx * (right - left));                               \
                    }                                                                               \
                    dot[at] = sum;                                                                  \
                    deriv[2 * at] = dcol;                                                           \
                    deriv[2 * at + 1] = drow;                                                       \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    return RS_OK;                                                                                   \
}                                                                                                   \
                                                                                                    \
/* grad_x[n, :, :, c] += sum_{y, x, t} bilinear^T(m[n, y, x, g K^2 + t] * v[n, y, x, c]): the       \
 * adjoint of the forward in its features, channels last into the padded N x (Hin+2) x              \
 * (Win+2) x C buffer (the caller drops the border, which collects what falls outside the           \
 * image).  Tasks are blocks of gp[12] channels of one group (n, grp, block; the last               \
 * block of a group may be narrower), so each task writes only channels it owns, and every          \
 * channel is summed in the same order whatever the block size; `grad_x` is zeroed by the           \
 * caller; `unused` is NULL. */                                                                     \
TARGET                                                                                              \
int reassemble_offset_scatter_##SUFFIX(const T *m, const T *v, const T *off, T *grad_x, T *unused,  \
                                       const int64_t *gp, int64_t task_begin, int64_t task_end) {   \
    (void)unused;                                                                                   \
    geom_t g = read_geom(gp);                                                                       \
    if (!geom_valid(&g)) return RS_BAD_GEOMETRY;                                                    \
    const offset_strides_t st = offset_strides(&g);                                                 \
    const int64_t k2 = st.k2, C = g.C, Cg = g.Cg, row = st.row, image = st.image;                   \
    const int64_t span = gp[12] > 0 && gp[12] < Cg ? gp[12] : Cg;                                   \
    const int64_t blocks = (Cg + span - 1) / span;                                                  \
    for (int64_t task = task_begin; task < task_end; ++task) {                                      \
        const int64_t n = task / (g.G * blocks), grp = task / blocks % g.G, block = task % blocks;  \
        const int64_t c0 = grp * Cg + block * span;                                                 \
        const int64_t width = Cg - block * span < span ? Cg - block * span : span;                  \
        for (int64_t y = 0; y < g.Hout; ++y) {                                                      \
            const int64_t row0 = window_row_##SUFFIX(&g, y);                                        \
            for (int64_t xo = 0; xo < g.Wout; ++xo) {                                               \
                const int64_t pix = (n * g.Hout + y) * g.Wout + xo, col0 = window_col_##SUFFIX(&g, xo);\
                const T *restrict vp = v + pix * C + c0;                                            \
                for (int64_t a = 0; a < g.K; ++a) for (int64_t b = 0; b < g.K; ++b) {               \
                    const int64_t t = a * g.K + b;                                                  \
                    int64_t pixel; T fx, fy;                                                        \
                    const int64_t at = pix * g.G * k2 + grp * k2 + t;                               \
                    if (!offset_corner_##SUFFIX(&g, off + 2 * at, row0 + a, col0 + b, &pixel, &fx, &fy))\
                        continue;                                                                   \
                    const T w = m[at];                                                              \
                    const T b00 = ((T)1 - fx) * ((T)1 - fy), b01 = fx * ((T)1 - fy);                \
                    const T b10 = ((T)1 - fx) * fy, b11 = fx * fy;                                  \
                    T *restrict q00 = grad_x + n * image + pixel * C + c0;                          \
                    T *restrict q01 = q00 + C, *restrict q10 = q00 + row, *restrict q11 = q10 + C;  \
                    for (int64_t c = 0; c < width; ++c) {                                           \
                        const T value = w * vp[c];                                                  \
                        q00[c] += b00 * value;                                                      \
                        q01[c] += b01 * value;                                                      \
                        q10[c] += b10 * value;                                                      \
                        q11[c] += b11 * value;                                                      \
                    }                                                                               \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }                                                                                               \
    return RS_OK;                                                                                   \
}

RS_EACH_LEVEL_TYPED(DEFINE_OFFSET_KERNELS, float, f32)
RS_EACH_LEVEL_TYPED(DEFINE_OFFSET_KERNELS, double, f64)

/* Layout changes for the offset kernels, in 16 x 16 blocks (torch's strided copy of a
 * permuted tensor runs far below the copy bandwidth).  dims: N, C, H, W, pad, to_pixels:
 *   to_pixels 1: N x C x H x W -> N x (H + 2 pad) x (W + 2 pad) x C (the border is left as
 *                the caller made it: zeroed)
 *   to_pixels 0: the inverse, reading the interior.
 * Each block is copied along the destination's contiguous axis.  Tasks are rows (n, y). */
#define RS_TRANSPOSE_BLOCK 16
#define DEFINE_LAYOUT_KERNELS(T, SUFFIX, TARGET)                                                    \
TARGET                                                                                     \
int reassemble_change_layout_##SUFFIX(const T *src, T *dst, const int64_t *dims,          \
                                      int64_t task_begin, int64_t task_end) {             \
    const int64_t C = dims[1], H = dims[2], W = dims[3], pad = dims[4], to_pixels = dims[5]; \
    const int64_t Wp = W + 2 * pad, Hp = H + 2 * pad, plane = H * W;                       \
    /* outer axis: x for pixels (dst stride C), c for planes (dst stride plane); the inner \
     * axis is the other one, contiguous in dst; the outer one is contiguous in src. */    \
    const int64_t outer_n = to_pixels ? W : C, inner_n = to_pixels ? C : W;                \
    const int64_t dst_outer = to_pixels ? C : plane, src_inner = to_pixels ? plane : C;    \
    for (int64_t task = task_begin; task < task_end; ++task) {                             \
        const int64_t n = task / H, y = task % H;                                          \
        const int64_t planes_row = n * C * plane + y * W;                                  \
        const int64_t pixels_row = ((n * Hp + y + pad) * Wp + pad) * C;                    \
        const T *s = src + (to_pixels ? planes_row : pixels_row);                          \
        T *d = dst + (to_pixels ? pixels_row : planes_row);                                \
        for (int64_t o0 = 0; o0 < outer_n; o0 += RS_TRANSPOSE_BLOCK)                       \
            for (int64_t i0 = 0; i0 < inner_n; i0 += RS_TRANSPOSE_BLOCK) {                 \
                const int64_t o1 = o0 + RS_TRANSPOSE_BLOCK < outer_n ? o0 + RS_TRANSPOSE_BLOCK : outer_n; \
                const int64_t i1 = i0 + RS_TRANSPOSE_BLOCK < inner_n ? i0 + RS_TRANSPOSE_BLOCK : inner_n; \
                for (int64_t o = o0; o < o1; ++o)                                          \
                    for (int64_t i = i0; i < i1; ++i) d[o * dst_outer + i] = s[o + i * src_inner]; \
            }                                                                              \
    }                                                                                      \
    return RS_OK;                                                                          \
}

RS_EACH_LEVEL_TYPED(DEFINE_LAYOUT_KERNELS, float, f32)
RS_EACH_LEVEL_TYPED(DEFINE_LAYOUT_KERNELS, double, f64)

/* Version of the kernel ABI; the Python loader refuses a stale build. */
int64_t reassemble_abi_version(void) { return 8; }

/* The highest level this CPU runs: 4 (x86-64-v4: AVX-512), 3 (x86-64-v3: AVX2 and FMA),
 * 1 (the baseline build: SSE2 on x86-64, or whatever the compiler targets elsewhere). */
static int64_t rs_detected_level(void) {
#ifdef RS_HAVE_LEVELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
#endif
    return 1;
}

/* The level the exported kernels call: the detected one unless native_select_isa lowered
 * it (set once, when the library loads; every thread reads the same value). */
static int64_t rs_level = -1;

static int64_t rs_current_level(void) {
    if (rs_level < 0) rs_level = rs_detected_level();
    return rs_level;
}

/* The level the kernels run. */
int64_t native_isa_level(void) { return rs_current_level(); }

/* Run the kernels at `level` or the highest level below it that this CPU has (a level
 * above the CPU's is lowered to it); returns the level now in use. */
int64_t native_select_isa(int64_t level) {
    const int64_t top = rs_detected_level();
    rs_level = level >= top ? top : level >= 3 ? 3 : 1;
    return rs_level;
}

#ifdef RS_HAVE_LEVELS
#define RS_CALL_LEVEL(NAME, ARGS)                                                          \
    switch (rs_current_level()) {                                                          \
    case 4: return NAME##_v4 ARGS;                                                         \
    case 3: return NAME##_v3 ARGS;                                                         \
    default: return NAME##_base ARGS;                                                      \
    }
#else
#define RS_CALL_LEVEL(NAME, ARGS) return NAME##_base ARGS;
#endif

/* The exported kernels (the names the Python loader binds). */
#define RS_EXPORT_PLANES(NAME, T)                                                          \
int NAME(const T *a, const T *b, T *c, const int64_t *gp, int64_t t0, int64_t t1) {        \
    RS_CALL_LEVEL(NAME, (a, b, c, gp, t0, t1))                                             \
}
#define RS_EXPORT_OFFSETS(NAME, T)                                                         \
int NAME(const T *a, const T *b, const T *c, T *d, T *e, const int64_t *gp, int64_t t0,    \
         int64_t t1) {                                                                     \
    RS_CALL_LEVEL(NAME, (a, b, c, d, e, gp, t0, t1))                                       \
}
#define RS_EXPORT_LAYOUT(NAME, T)                                                          \
int NAME(const T *src, T *dst, const int64_t *dims, int64_t t0, int64_t t1) {              \
    RS_CALL_LEVEL(NAME, (src, dst, dims, t0, t1))                                          \
}
#define RS_EXPORT_ALL(T, S)                                                                \
    RS_EXPORT_PLANES(reassemble_forward_##S, T)                                            \
    RS_EXPORT_PLANES(reassemble_grad_kernels_##S, T)                                       \
    RS_EXPORT_PLANES(reassemble_grad_features_##S, T)                                      \
    RS_EXPORT_PLANES(reassemble_forward_pixels_##S, T)                                     \
    RS_EXPORT_PLANES(reassemble_grad_kernels_pixels_##S, T)                                \
    RS_EXPORT_PLANES(reassemble_grad_features_pixels_##S, T)                               \
    RS_EXPORT_OFFSETS(reassemble_offset_forward_##S, T)                                    \
    RS_EXPORT_OFFSETS(reassemble_offset_correlate_##S, T)                                  \
    RS_EXPORT_OFFSETS(reassemble_offset_scatter_##S, T)                                    \
    RS_EXPORT_LAYOUT(reassemble_change_layout_##S, T)
RS_EXPORT_ALL(float, f32)
RS_EXPORT_ALL(double, f64)

/* Parallel runs on the OpenMP runtime that torch already runs, when the loader binds it
 * (through the GOMP entry points, which GNU libgomp and LLVM libomp both export).  Torch's
 * workers spin for a while after each of its parallel regions; a separate pool competing
 * with them for the cores ran the kernels up to twice as slow.  Nothing links OpenMP at
 * build time, so the library builds and loads without it (the loader then uses its pool). */
typedef void (*rs_team_start_t)(void (*body)(void *), void *data, unsigned threads, unsigned flags);
typedef int (*rs_team_query_t)(void);
static rs_team_start_t rs_team_start = NULL;
static rs_team_query_t rs_team_member = NULL, rs_team_size = NULL;

/* Bind the runtime's GOMP_parallel, omp_get_thread_num and omp_get_num_threads (all three
 * or none); returns 1 when bound. */
int64_t native_bind_team(void *start, void *member, void *size) {
    if (!start || !member || !size) { rs_team_start = NULL; return 0; }
    rs_team_start = (rs_team_start_t)start;
    rs_team_member = (rs_team_query_t)member;
    rs_team_size = (rs_team_query_t)size;
    return 1;
}

/* At most this many ranges a run (more than any core count the pool is sized for). */
#define RS_MAX_RANGES 1024

typedef struct {
    void *kernel;             /* an exported kernel taking `arity` tensors, geometry, t0, t1 */
    int64_t arity, tasks, ranges;
    void *const *tensors;
    const int64_t *gp;
    int codes[RS_MAX_RANGES];
} rs_job_t;

typedef int (*rs_kernel2_t)(void *, void *, const int64_t *, int64_t, int64_t);
typedef int (*rs_kernel3_t)(void *, void *, void *, const int64_t *, int64_t, int64_t);
typedef int (*rs_kernel5_t)(void *, void *, void *, void *, void *, const int64_t *, int64_t, int64_t);

static int rs_run_range(const rs_job_t *job, int64_t t0, int64_t t1) {
    void *const *p = job->tensors;
    switch (job->arity) {
    case 2: return ((rs_kernel2_t)job->kernel)(p[0], p[1], job->gp, t0, t1);
    case 3: return ((rs_kernel3_t)job->kernel)(p[0], p[1], p[2], job->gp, t0, t1);
    case 5: return ((rs_kernel5_t)job->kernel)(p[0], p[1], p[2], p[3], p[4], job->gp, t0, t1);
    default: return RS_BAD_GEOMETRY;
    }
}

/* Range i of the job: tasks [tasks * i / ranges, tasks * (i + 1) / ranges), its code kept. */
static void rs_run_share(rs_job_t *job, int64_t i) {
    job->codes[i] = rs_run_range(job, job->tasks * i / job->ranges, job->tasks * (i + 1) / job->ranges);
}

/* Every member runs ranges member, member + size, ...: a smaller team than asked for still
 * covers them all. */
static void rs_team_body(void *data) {
    rs_job_t *job = (rs_job_t *)data;
    const int64_t member = rs_team_member(), size = rs_team_size();
    for (int64_t i = member; i < job->ranges; i += size) rs_run_share(job, i);
}

/* Run `kernel` over `tasks` tasks as `ranges` contiguous ranges on the bound team; the
 * first failing range's code is returned.  Unbound, or one range, it runs here in turn. */
int native_run(void *kernel, int64_t arity, void *const *tensors, const int64_t *gp, int64_t tasks,
               int64_t ranges) {
    rs_job_t *job = (rs_job_t *)malloc(sizeof(rs_job_t));
    if (!job) return RS_NO_MEMORY;
    job->kernel = kernel; job->arity = arity; job->tensors = tensors; job->gp = gp;
    job->tasks = tasks;
    job->ranges = ranges < 1 ? 1 : ranges > RS_MAX_RANGES ? RS_MAX_RANGES : ranges;
    for (int64_t i = 0; i < job->ranges; i++) job->codes[i] = RS_OK;
    if (rs_team_start && job->ranges > 1) {
        rs_team_start(rs_team_body, job, (unsigned)job->ranges, 0);
    } else {
        for (int64_t i = 0; i < job->ranges; i++) rs_run_share(job, i);
    }
    int code = RS_OK;
    for (int64_t i = 0; i < job->ranges && code == RS_OK; i++) code = job->codes[i];
    free(job);
    return code;
}

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "_native",
    "Native CPU kernels of the resamplers reassembly core (loaded with ctypes).", -1, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&native_module); }
