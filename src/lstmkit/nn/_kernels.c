/* Per-step elementwise work of the plain LSTM, fused into one pass each way.
 *
 * Gate layout per row is the fast path's internal order (o, i, f, g), each `hidden` wide.
 * Compiled at first use by lstmkit/nn/native.py with -O3 -ffast-math -fopenmp-simd so that the
 * inner loops vectorise (exp through glibc's libmvec). Pre-activations are clamped before exp, so
 * no step overflows to inf. Same equations as lstmkit.nn.cell.lstm_step; tested equal to it.
 */
#include <math.h>

#define DEFINE_KERNELS(T, SUFFIX, EXP)                                                          \
  static inline T clamp_##SUFFIX(T x, T bound) { return x < -bound ? -bound : (x > bound ? bound : x); } \
  static inline T sigmoid_##SUFFIX(T x) { return (T)1 / ((T)1 + EXP(-clamp_##SUFFIX(x, (T)40))); } \
  static inline T tanh_##SUFFIX(T x) {                                                          \
    return (T)1 - (T)2 / (EXP((T)2 * clamp_##SUFFIX(x, (T)20)) + (T)1);                         \
  }                                                                                             \
  /* acts = act(xp + z); c = f*c_prev + i*g; s = tanh(c); h = o*s.  Rows: xp, z, acts 4H; rest H. */ \
  void lstm_forward_##SUFFIX(long rows, long hidden, const T *restrict xp, const T *restrict z,  \
                             T *restrict acts, const T *restrict c_prev, T *restrict c,         \
                             T *restrict s, T *restrict h) {                                     \
    for (long r = 0; r < rows; ++r) {                                                           \
      const T *x4 = xp + r * 4 * hidden, *z4 = z + r * 4 * hidden;                              \
      T *a4 = acts + r * 4 * hidden;                                                            \
      const T *cp = c_prev + r * hidden;                                                        \
      T *cr = c + r * hidden, *sr = s + r * hidden, *hr = h + r * hidden;                       \
      _Pragma("omp simd")                                                                       \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T o = sigmoid_##SUFFIX(x4[j] + z4[j]);                                                  \
        T i = sigmoid_##SUFFIX(x4[hidden + j] + z4[hidden + j]);                                \
        T f = sigmoid_##SUFFIX(x4[2 * hidden + j] + z4[2 * hidden + j]);                        \
        T g = tanh_##SUFFIX(x4[3 * hidden + j] + z4[3 * hidden + j]);                           \
        a4[j] = o; a4[hidden + j] = i; a4[2 * hidden + j] = f; a4[3 * hidden + j] = g;          \
        T cell = f * cp[j] + i * g;                                                             \
        T st = tanh_##SUFFIX(cell);                                                             \
        cr[j] = cell; sr[j] = st; hr[j] = o * st;                                               \
      }                                                                                         \
    }                                                                                           \
  }                                                                                             \
  /* dr = dh_a (+ dh_b): gradient of h = o*s.  carry: d/dc_t in, d/dc_{t-1} out.  d_pre: 4H. */ \
  void lstm_backward_##SUFFIX(long rows, long hidden, const T *restrict dh_a,                   \
                              const T *restrict dh_b, T *restrict carry, const T *restrict acts, \
                              const T *restrict s, const T *restrict c_prev, T *restrict d_pre) { \
    for (long r = 0; r < rows; ++r) {                                                           \
      const T *da = dh_a + r * hidden, *db = dh_b ? dh_b + r * hidden : 0;                      \
      const T *a4 = acts + r * 4 * hidden, *sr = s + r * hidden, *cp = c_prev + r * hidden;     \
      T *cr = carry + r * hidden, *d4 = d_pre + r * 4 * hidden;                                 \
      _Pragma("omp simd")                                                                       \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T dr = db ? da[j] + db[j] : da[j];                                                      \
        T o = a4[j], i = a4[hidden + j], f = a4[2 * hidden + j], g = a4[3 * hidden + j];        \
        T st = sr[j];                                                                           \
        T dc = cr[j] + dr * o * ((T)1 - st * st);                                               \
        d4[j] = dr * st * o * ((T)1 - o);                                                       \
        d4[hidden + j] = dc * g * i * ((T)1 - i);                                               \
        d4[2 * hidden + j] = dc * cp[j] * f * ((T)1 - f);                                       \
        d4[3 * hidden + j] = dc * i * ((T)1 - g * g);                                           \
        cr[j] = dc * f;                                                                         \
      }                                                                                         \
    }                                                                                           \
  }

/* Layer-norm LSTM (Ba et al. 2016): pre = xp + LN(z) * g_hh; h = o * tanh(LN(c) * g_c + b_c).
 * Row statistics are population mean and 1/sqrt(var + eps), like torch.nn.functional.layer_norm. */
#define DEFINE_LN_KERNELS(T, SUFFIX, SQRT)                                                      \
  static inline void stats_##SUFFIX(const T *x, long n, T eps, T *mean, T *rstd) {              \
    T m = 0, v = 0;                                                                             \
    for (long j = 0; j < n; ++j) m += x[j];                                                     \
    m /= (T)n;                                                                                  \
    for (long j = 0; j < n; ++j) v += (x[j] - m) * (x[j] - m);                                  \
    *mean = m;                                                                                  \
    *rstd = (T)1 / SQRT(v / (T)n + eps);                                                        \
  }                                                                                             \
  void lstm_ln_forward_##SUFFIX(long rows, long hidden, T eps, const T *restrict xp,            \
                                const T *restrict z, const T *restrict g_hh,                    \
                                const T *restrict g_c, const T *restrict b_c, T *restrict acts, \
                                const T *restrict c_prev, T *restrict c, T *restrict s,         \
                                T *restrict h, T *restrict z_mean, T *restrict z_rstd,          \
                                T *restrict c_mean, T *restrict c_rstd) {                       \
    long gates = 4 * hidden;                                                                    \
    for (long r = 0; r < rows; ++r) {                                                           \
      const T *x4 = xp + r * gates, *z4 = z + r * gates, *cp = c_prev + r * hidden;             \
      T *a4 = acts + r * gates, *cr = c + r * hidden, *sr = s + r * hidden, *hr = h + r * hidden; \
      T zm, zr, cm, crs;                                                                        \
      stats_##SUFFIX(z4, gates, eps, &zm, &zr);                                                 \
      _Pragma("omp simd")                                                                       \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T o = sigmoid_##SUFFIX(x4[j] + (z4[j] - zm) * zr * g_hh[j]);                            \
        T i = sigmoid_##SUFFIX(x4[hidden + j] + (z4[hidden + j] - zm) * zr * g_hh[hidden + j]); \
        T f = sigmoid_##SUFFIX(x4[2 * hidden + j] +                                             \
                               (z4[2 * hidden + j] - zm) * zr * g_hh[2 * hidden + j]);          \
        T g = tanh_##SUFFIX(x4[3 * hidden + j] +                                                \
                            (z4[3 * hidden + j] - zm) * zr * g_hh[3 * hidden + j]);             \
        a4[j] = o; a4[hidden + j] = i; a4[2 * hidden + j] = f; a4[3 * hidden + j] = g;          \
        cr[j] = f * cp[j] + i * g;                                                              \
      }                                                                                         \
      stats_##SUFFIX(cr, hidden, eps, &cm, &crs);                                               \
      _Pragma("omp simd")                                                                       \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T st = tanh_##SUFFIX((cr[j] - cm) * crs * g_c[j] + b_c[j]);                             \
        sr[j] = st; hr[j] = a4[j] * st;                                                         \
      }                                                                                         \
      z_mean[r] = zm; z_rstd[r] = zr; c_mean[r] = cm; c_rstd[r] = crs;                          \
    }                                                                                           \
  }                                                                                             \
  /* Outputs d_pre (4H, = d xp), d_z (4H, before the recurrent LN) and d_cn (H, after the cell \
   * LN, for its gain and bias); carry: d/dc_t in, d/dc_{t-1} out. */                           \
  void lstm_ln_backward_##SUFFIX(                                                               \
      long rows, long hidden, const T *restrict dh_a, const T *restrict dh_b,                   \
      T *restrict carry, const T *restrict acts, const T *restrict s, const T *restrict c_prev, \
      const T *restrict c, const T *restrict c_mean, const T *restrict c_rstd,                  \
      const T *restrict g_c, const T *restrict z, const T *restrict z_mean,                     \
      const T *restrict z_rstd, const T *restrict g_hh, T *restrict d_pre, T *restrict d_z,     \
      T *restrict d_cn) {                                                                       \
    long gates = 4 * hidden;                                                                    \
    for (long r = 0; r < rows; ++r) {                                                           \
      const T *da = dh_a + r * hidden, *db = dh_b ? dh_b + r * hidden : 0;                      \
      const T *a4 = acts + r * gates, *sr = s + r * hidden, *cp = c_prev + r * hidden;          \
      const T *cr = c + r * hidden, *z4 = z + r * gates;                                        \
      T *car = carry + r * hidden, *d4 = d_pre + r * gates, *dz4 = d_z + r * gates;             \
      T *dn = d_cn + r * hidden;                                                                \
      T cm = c_mean[r], crs = c_rstd[r], zm = z_mean[r], zr = z_rstd[r];                        \
      T sum1 = 0, sum2 = 0;                                                                     \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T dr = db ? da[j] + db[j] : da[j];                                                      \
        T o = a4[j], st = sr[j];                                                                \
        d4[j] = dr * st * o * ((T)1 - o);                                                       \
        T dcn = dr * o * ((T)1 - st * st);                                                      \
        dn[j] = dcn;                                                                            \
        sum1 += dcn * g_c[j];                                                                   \
        sum2 += dcn * g_c[j] * (cr[j] - cm) * crs;                                              \
      }                                                                                         \
      sum1 /= (T)hidden; sum2 /= (T)hidden;                                                     \
      _Pragma("omp simd")                                                                       \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T i = a4[hidden + j], f = a4[2 * hidden + j], g = a4[3 * hidden + j];                   \
        T dc = car[j] + crs * (dn[j] * g_c[j] - sum1 - (cr[j] - cm) * crs * sum2);              \
        d4[hidden + j] = dc * g * i * ((T)1 - i);                                               \
        d4[2 * hidden + j] = dc * cp[j] * f * ((T)1 - f);                                       \
        d4[3 * hidden + j] = dc * i * ((T)1 - g * g);                                           \
        car[j] = dc * f;                                                                        \
      }                                                                                         \
      T zsum1 = 0, zsum2 = 0;                                                                   \
      for (long k = 0; k < gates; ++k) {                                                        \
        T dg = d4[k] * g_hh[k];                                                                 \
        zsum1 += dg;                                                                            \
        zsum2 += dg * (z4[k] - zm) * zr;                                                        \
      }                                                                                         \
      zsum1 /= (T)gates; zsum2 /= (T)gates;                                                     \
      _Pragma("omp simd")                                                                       \
      for (long k = 0; k < gates; ++k)                                                          \
        dz4[k] = zr * (d4[k] * g_hh[k] - zsum1 - (z4[k] - zm) * zr * zsum2);                    \
    }                                                                                           \
  }

DEFINE_KERNELS(float, f32, expf)
DEFINE_KERNELS(double, f64, exp)
DEFINE_LN_KERNELS(float, f32, sqrtf)
DEFINE_LN_KERNELS(double, f64, sqrt)

/* Whole time loops: the per-step GEMMs go through BLAS (`gemm`, Fortran `sgemm_`/`dgemm_`,
 * column-major, found in torch's own library by native.py; with MKL, float32 steps with the
 * whole batch use `compute` on weights packed once per call) and the elementwise work through the
 * kernels above, so a layer's forward or backward is one call with no per-step dispatch.
 * All buffers are row-major and contiguous, time-major: (T, B, ·). `batch_sizes` (NULL: all
 * rows at every step) is non-increasing, as in PackedSequence; step t touches its first rows. */
#define DEFINE_SEQUENCE(T, SUFFIX)                                                              \
  typedef void (*gemm_##SUFFIX)(const char *, const char *, const int *, const int *,           \
                                const int *, const T *, const T *, const int *, const T *,      \
                                const int *, const T *, T *, const int *);                      \
  /* MKL's packed-matrix GEMM (cblas_?gemm_compute with a B packed once per call), or NULL. */ \
  typedef void (*compute_##SUFFIX)(int, int, int, int, int, int, const T *, int, const T *, int, \
                                   T, T *, int);                                                \
  typedef struct {                                                                              \
    gemm_##SUFFIX gemm;                                                                         \
    compute_##SUFFIX compute;                                                                   \
  } blas_##SUFFIX;                                                                              \
  /* out (n, cols) = a (n, k) @ op(w): op(w) = w.T for w (cols, k) when `transposed`, else w   \
   * (k, cols). `packed` (or NULL): op(w) packed by cblas_?gemm_pack for n rows. */              \
  static void mm_##SUFFIX(const blas_##SUFFIX *blas, long n, long cols, long k, const T *a,     \
                          const T *w, int transposed, const T *packed, T *out) {                \
    const int m_ = (int)cols, n_ = (int)n, k_ = (int)k;                                         \
    const T one = 1, zero = 0;                                                                  \
    if (packed && blas->compute) /* row-major, A as is, B packed */                             \
      blas->compute(101, 111, 151, n_, m_, k_, a, k_, packed, m_, zero, out, m_);               \
    else if (transposed)                                                                        \
      blas->gemm("T", "N", &m_, &n_, &k_, &one, w, &k_, a, &k_, &zero, out, &m_);               \
    else                                                                                        \
      blas->gemm("N", "N", &m_, &n_, &k_, &one, w, &m_, a, &k_, &zero, out, &m_);               \
  }                                                                                             \
  /* Forward of one layer and direction. z: scratch (B, 4H). w_hr and pre_proj: NULL without  \
   * projection. ln_hh: NULL without layer norm (then g_c, b_c, rec_pre_ln, the stats unused); \
   * rec_stats/cell_stats: (2, T, B), mean then rstd. */                                        \
  void lstm_sequence_forward_##SUFFIX(                                                          \
      gemm_##SUFFIX gemm, compute_##SUFFIX compute, long steps, long batch, long hidden,        \
      long state, const long *batch_sizes, const T *xp, const T *h0, const T *c0,               \
      const T *w_hh, const T *w_hh_packed, const T *w_hr, const T *w_hr_packed, T *acts, T *cells, T *tanh_cells, T *out, T *pre_proj, T *z, T eps,        \
      const T *ln_hh, const T *g_c, const T *b_c, T *rec_pre_ln, T *rec_stats, T *cell_stats) { \
    long gates = 4 * hidden, tb = steps * batch;                                                \
    const blas_##SUFFIX blas = {gemm, compute};                                                 \
    for (long t = 0; t < steps; ++t) {                                                          \
      long n = batch_sizes ? batch_sizes[t] : batch;                                            \
      const T *h_prev = t ? out + (t - 1) * batch * state : h0;                                 \
      const T *c_prev = t ? cells + (t - 1) * batch * hidden : c0;                              \
      T *z_t = ln_hh ? rec_pre_ln + t * batch * gates : z;                                      \
      T *h_t = out + t * batch * state;                                                         \
      T *r_t = w_hr ? pre_proj + t * batch * hidden : h_t;                                      \
      T *a_t = acts + t * batch * gates, *c_t = cells + t * batch * hidden;                     \
      T *s_t = tanh_cells + t * batch * hidden;                                                 \
      mm_##SUFFIX(&blas, n, gates, state, h_prev, w_hh, 1, n == batch ? w_hh_packed : 0, z_t);  \
      if (ln_hh)                                                                                \
        lstm_ln_forward_##SUFFIX(n, hidden, eps, xp + t * batch * gates, z_t, ln_hh, g_c, b_c,  \
                                 a_t, c_prev, c_t, s_t, r_t, rec_stats + t * batch,             \
                                 rec_stats + tb + t * batch, cell_stats + t * batch,            \
                                 cell_stats + tb + t * batch);                                  \
      else                                                                                      \
        lstm_forward_##SUFFIX(n, hidden, xp + t * batch * gates, z_t, a_t, c_prev, c_t, s_t, r_t); \
      if (w_hr)                                                                                 \
        mm_##SUFFIX(&blas, n, state, hidden, r_t, w_hr, 1, n == batch ? w_hr_packed : 0, h_t);  \
    }                                                                                           \
  }                                                                                             \
  /* Backward of one layer and direction. grad_out (T, B, P) holds d loss / d output, with     \
   * h_n's gradient already added at each row's last step when lengths vary. carry_h (B, P):   \
   * in, h_n's gradient (zeros when lengths vary); out, d loss / d h0. carry_c (B, H): in, c_n's \
   * gradient; out, d loss / d c0. d_pre (T, B, 4H): d loss / d xp. proj_in (T, B, P), dh      \
   * (B, H): with projection only. d_rec (T, B, 4H) and d_cn (T, B, H): with layer norm only.  \
   * Rows of an output that no step touches are left as they are (the caller zeroes them). */   \
  void lstm_sequence_backward_##SUFFIX(                                                         \
      gemm_##SUFFIX gemm, compute_##SUFFIX compute, long steps, long batch, long hidden,        \
      long state, const long *batch_sizes, const T *grad_out, T *carry_h, T *carry_c,           \
      const T *acts, const T *cells, const T *tanh_cells, const T *c0, const T *w_hh,           \
      const T *w_hh_packed, const T *w_hr, const T *w_hr_packed,                                \
      T *proj_in, T *dh, T *d_pre, const T *ln_hh, const T *g_c, const T *rec_pre_ln,           \
      const T *rec_stats, const T *cell_stats, T *d_rec, T *d_cn) {                             \
    long gates = 4 * hidden, tb = steps * batch;                                                \
    const blas_##SUFFIX blas = {gemm, compute};                                                 \
    for (long t = steps - 1; t >= 0; --t) {                                                     \
      long n = batch_sizes ? batch_sizes[t] : batch;                                            \
      const T *dh_a = grad_out + t * batch * state, *dh_b = carry_h;                            \
      if (w_hr) {                                                                               \
        T *p = proj_in + t * batch * state;                                                     \
        for (long k = 0; k < n * state; ++k) p[k] = dh_a[k] + carry_h[k];                       \
        mm_##SUFFIX(&blas, n, hidden, state, p, w_hr, 0, n == batch ? w_hr_packed : 0, dh);     \
        dh_a = dh;                                                                              \
        dh_b = 0;                                                                               \
      }                                                                                         \
      const T *c_prev = t ? cells + (t - 1) * batch * hidden : c0;                              \
      const T *a_t = acts + t * batch * gates, *s_t = tanh_cells + t * batch * hidden;          \
      T *dp_t = d_pre + t * batch * gates, *src = dp_t;                                         \
      if (ln_hh) {                                                                              \
        src = d_rec + t * batch * gates;                                                        \
        lstm_ln_backward_##SUFFIX(n, hidden, dh_a, dh_b, carry_c, a_t, s_t, c_prev,             \
                                  cells + t * batch * hidden, cell_stats + t * batch,           \
                                  cell_stats + tb + t * batch, g_c,                             \
                                  rec_pre_ln + t * batch * gates, rec_stats + t * batch,        \
                                  rec_stats + tb + t * batch, ln_hh, dp_t, src,                 \
                                  d_cn + t * batch * hidden);                                   \
      } else {                                                                                  \
        lstm_backward_##SUFFIX(n, hidden, dh_a, dh_b, carry_c, a_t, s_t, c_prev, dp_t);         \
      }                                                                                         \
      mm_##SUFFIX(&blas, n, state, gates, src, w_hh, 0, n == batch ? w_hh_packed : 0, carry_h); \
    }                                                                                           \
  }                                                                                             \
  /* out (n, cols) = a (n, k) @ w.T through `gemm`: native.py checks the BLAS binding with it. */ \
  void gemm_check_##SUFFIX(gemm_##SUFFIX gemm, compute_##SUFFIX compute, long n, long cols,     \
                           long k, const T *a, const T *w, const T *packed, T *out) {           \
    const blas_##SUFFIX blas = {gemm, compute};                                                 \
    mm_##SUFFIX(&blas, n, cols, k, a, w, 1, packed, out);                                       \
  }

DEFINE_SEQUENCE(float, f32)
DEFINE_SEQUENCE(double, f64)
