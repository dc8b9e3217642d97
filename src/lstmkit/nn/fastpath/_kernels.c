/* Per-step elementwise work of the plain LSTM, fused into one pass each way.
 *
 * Gate layout per row is the fast path's internal order (o, i, f, g), each `hidden` wide.
 * Built by lstmkit/nn/kernel_build.py (at install, one library per vector ISA) with -O3,
 * OpenMP's SIMD pragmas and -ffast-math less its finite-math assumption: NaN and +-Inf propagate
 * exactly as through torch's ops (a finite-math build turned NaN inputs into finite outputs). exp may overflow to
 * inf on purpose: 1 / (1 + inf) = 0 and 2 / (inf + 1) = 0 are the exact limits, so sigmoid and
 * tanh of +-Inf are torch's 0, 1 and -1 (a clamp before exp gave 4e-18 instead of 0, and a
 * gradient of inf instead of torch's NaN). Same equations as lstmkit.nn.cell.lstm_step; tested
 * equal to it.
 */
#include <math.h>

/* The inner loops call exp on whole vectors through glibc's libmvec. GCC only knows its SIMD
 * variants when all of -ffast-math is on (glibc declares them for __FAST_MATH__ alone), so
 * declare them here; libmvec's exp handles NaN and the infinities like the scalar one. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__FAST_MATH__)
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern double exp(double);
#endif

/* float32 exp inline, so the loops below vectorise it with no call (libmvec's expf measured
 * ~3x the time of this in the forward kernel at H=128 on AVX-512, the forward's elementwise work
 * being about a third of its time). exp(x) = 2^n exp(r), n = rint(x / ln 2), r = x - n ln 2 in two
 * FMA steps (Cody-Waite), exp(r) by Cephes' expf polynomial (about 1 ulp on [-ln2/2, ln2/2]).
 * The polynomial runs on x limited to the range whose 2^n is a normal float; the special
 * values are then set exactly as the C library's expf gives them: +inf above its overflow
 * threshold (so exp may overflow to inf on purpose, see above), NaN for NaN, and 0 below
 * -87.33 (where expf gives a denormal, under 1.2e-38: 1 + that is 1, so sigmoid and tanh, which
 * only ever add it to 1, are unchanged). Nothing but this function's own polynomial sees the
 * limited value: no clamp reaches sigmoid or tanh. */
static inline float exp_f32(float x) {
  const float hi = 88.72283935546875f; /* expf(x) = +inf above this */
  const float lo = -87.33654475f;      /* below: 2^n would be denormal */
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  xc = x != x ? 0.0f : xc;
  float n = __builtin_rintf(xc * 1.44269504088896341f);
  float r = __builtin_fmaf(-n, 0.693359375f, xc);
  r = __builtin_fmaf(-n, -2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = __builtin_fmaf(p, r, 1.3981999507e-3f);
  p = __builtin_fmaf(p, r, 8.3334519073e-3f);
  p = __builtin_fmaf(p, r, 4.1665795894e-2f);
  p = __builtin_fmaf(p, r, 1.6666665459e-1f);
  p = __builtin_fmaf(p, r, 5.0000001201e-1f);
  p = __builtin_fmaf(p * r, r, r) + 1.0f;
  /* 2^n for n in [-126, 128]: 2^128 (n at hi) is built as 2 * 2^127 */
  int e = (int)n;
  int half = e >> 1;
  union { int i; float f; } a = {(half + 127) << 23}, b = {(e - half + 127) << 23};
  float y = p * a.f * b.f;
  y = x > hi ? (float)INFINITY : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;
}

#define DEFINE_KERNELS(T, SUFFIX, EXP)                                                          \
  static inline T sigmoid_##SUFFIX(T x) { return (T)1 / ((T)1 + EXP(-x)); }                 \
  static inline T tanh_##SUFFIX(T x) {                                                          \
    return (T)1 - (T)2 / (EXP((T)2 * x) + (T)1);                                                \
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
      const T *da = dh_a + r * hidden, *db = dh_b ? dh_b + r * hidden : da;                     \
      const T both = dh_b ? (T)1 : (T)0; /* no branch in the vector loop */                     \
      const T *a4 = acts + r * 4 * hidden, *sr = s + r * hidden, *cp = c_prev + r * hidden;     \
      T *cr = carry + r * hidden, *d4 = d_pre + r * 4 * hidden;                                 \
      _Pragma("omp simd")                                                                       \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T dr = da[j] + both * db[j];                                                            \
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
    _Pragma("omp simd reduction(+ : m)")                                                        \
    for (long j = 0; j < n; ++j) m += x[j];                                                     \
    m /= (T)n;                                                                                  \
    _Pragma("omp simd reduction(+ : v)")                                                        \
    for (long j = 0; j < n; ++j) v += (x[j] - m) * (x[j] - m);                                  \
    *mean = m;                                                                                  \
    *rstd = (T)1 / SQRT(v / (T)n + eps);                                                        \
  }                                                                                             \
  /* Input layer norm (g_ih non-NULL): xp holds x W_ih.T and each row becomes                \
   * LN(xp) * g_ih + b_ih (b_ih NULL: no bias), its statistics written to x_mean/x_rstd. */    \
  void lstm_ln_forward_##SUFFIX(long rows, long hidden, T eps, const T *restrict xp,            \
                                const T *restrict z, const T *restrict g_hh,                    \
                                const T *restrict g_c, const T *restrict b_c, T *restrict acts, \
                                const T *restrict c_prev, T *restrict c, T *restrict s,         \
                                T *restrict h, T *restrict z_mean, T *restrict z_rstd,          \
                                T *restrict c_mean, T *restrict c_rstd, const T *restrict g_ih, \
                                const T *restrict b_ih, T *restrict x_mean, T *restrict x_rstd) { \
    long gates = 4 * hidden;                                                                    \
    /* without input LN: x * 1 + 0 * b, with the same loop (no branch inside it) */             \
    const T *gi = g_ih ? g_ih : g_hh, *bi = b_ih ? b_ih : g_hh;                                 \
    const T use_g = g_ih ? (T)1 : (T)0, use_b = b_ih ? (T)1 : (T)0;                             \
    for (long r = 0; r < rows; ++r) {                                                           \
      const T *x4 = xp + r * gates, *z4 = z + r * gates, *cp = c_prev + r * hidden;             \
      T *a4 = acts + r * gates, *cr = c + r * hidden, *sr = s + r * hidden, *hr = h + r * hidden; \
      T zm, zr, cm, crs, xm = 0, xr = 1;                                                        \
      stats_##SUFFIX(z4, gates, eps, &zm, &zr);                                                 \
      if (g_ih) {                                                                               \
        stats_##SUFFIX(x4, gates, eps, &xm, &xr);                                               \
        x_mean[r] = xm; x_rstd[r] = xr;                                                         \
      }                                                                                         \
      _Pragma("omp simd")                                                                       \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T pre[4];                                                                               \
        for (int q = 0; q < 4; ++q) {                                                           \
          long k = q * hidden + j;                                                              \
          T xn = (x4[k] - xm) * xr * (use_g * gi[k] + ((T)1 - use_g)) + use_b * bi[k];          \
          pre[q] = xn + (z4[k] - zm) * zr * g_hh[k];                                            \
        }                                                                                       \
        T o = sigmoid_##SUFFIX(pre[0]), i = sigmoid_##SUFFIX(pre[1]);                           \
        T f = sigmoid_##SUFFIX(pre[2]), g = tanh_##SUFFIX(pre[3]);                              \
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
  /* Outputs d_pre (4H, d loss / d pre-activation), d_z (4H, before the recurrent LN) and    \
   * d_cn (H, after the cell LN, for its gain and bias); carry: d/dc_t in, d/dc_{t-1} out.     \
   * With input LN (g_ih non-NULL; xp, x_mean, x_rstd as in the forward) also d_x (4H, before  \
   * the input LN). sums (or NULL): the layer norms' parameter gradients of these rows are     \
   * added into it, (14H,): the gains of the recurrent LN (4H) and the cell LN (H), the cell LN's \
   * bias (H), then with input LN its gain and bias (4H each), while the rows are in cache. */   \
  void lstm_ln_backward_##SUFFIX(                                                               \
      long rows, long hidden, const T *restrict dh_a, const T *restrict dh_b,                   \
      T *restrict carry, const T *restrict acts, const T *restrict s, const T *restrict c_prev, \
      const T *restrict c, const T *restrict c_mean, const T *restrict c_rstd,                  \
      const T *restrict g_c, const T *restrict z, const T *restrict z_mean,                     \
      const T *restrict z_rstd, const T *restrict g_hh, T *restrict d_pre, T *restrict d_z,     \
      T *restrict d_cn, const T *restrict xp, const T *restrict g_ih,                           \
      const T *restrict x_mean, const T *restrict x_rstd, T *restrict d_x, T *restrict sums) { \
    long gates = 4 * hidden;                                                                    \
    for (long r = 0; r < rows; ++r) {                                                           \
      const T *da = dh_a + r * hidden, *db = dh_b ? dh_b + r * hidden : da;                     \
      const T both = dh_b ? (T)1 : (T)0;                                                        \
      const T *a4 = acts + r * gates, *sr = s + r * hidden, *cp = c_prev + r * hidden;          \
      const T *cr = c + r * hidden, *z4 = z + r * gates;                                        \
      T *car = carry + r * hidden, *d4 = d_pre + r * gates, *dz4 = d_z + r * gates;             \
      T *dn = d_cn + r * hidden;                                                                \
      T cm = c_mean[r], crs = c_rstd[r], zm = z_mean[r], zr = z_rstd[r];                        \
      T sum1 = 0, sum2 = 0;                                                                     \
      _Pragma("omp simd reduction(+ : sum1, sum2)")                                             \
      for (long j = 0; j < hidden; ++j) {                                                       \
        T dr = da[j] + both * db[j];                                                            \
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
      _Pragma("omp simd reduction(+ : zsum1, zsum2)")                                           \
      for (long k = 0; k < gates; ++k) {                                                        \
        T dg = d4[k] * g_hh[k];                                                                 \
        zsum1 += dg;                                                                            \
        zsum2 += dg * (z4[k] - zm) * zr;                                                        \
      }                                                                                         \
      zsum1 /= (T)gates; zsum2 /= (T)gates;                                                     \
      _Pragma("omp simd")                                                                       \
      for (long k = 0; k < gates; ++k)                                                          \
        dz4[k] = zr * (d4[k] * g_hh[k] - zsum1 - (z4[k] - zm) * zr * zsum2);                    \
      if (g_ih) {                                                                               \
        const T *x4 = xp + r * gates;                                                           \
        T *dx4 = d_x + r * gates, xm = x_mean[r], xr = x_rstd[r], xsum1 = 0, xsum2 = 0;         \
        _Pragma("omp simd reduction(+ : xsum1, xsum2)")                                         \
        for (long k = 0; k < gates; ++k) {                                                      \
          T dg = d4[k] * g_ih[k];                                                               \
          xsum1 += dg;                                                                          \
          xsum2 += dg * (x4[k] - xm) * xr;                                                      \
        }                                                                                       \
        xsum1 /= (T)gates; xsum2 /= (T)gates;                                                   \
        _Pragma("omp simd")                                                                     \
        for (long k = 0; k < gates; ++k)                                                        \
          dx4[k] = xr * (d4[k] * g_ih[k] - xsum1 - (x4[k] - xm) * xr * xsum2);                  \
      }                                                                                         \
      if (sums) {                                                                               \
        T *s_hh = sums, *s_cg = sums + gates, *s_cb = s_cg + hidden;                            \
        _Pragma("omp simd")                                                                     \
        for (long k = 0; k < gates; ++k) s_hh[k] += d4[k] * (z4[k] - zm) * zr;                  \
        _Pragma("omp simd")                                                                     \
        for (long j = 0; j < hidden; ++j) {                                                     \
          s_cg[j] += dn[j] * (cr[j] - cm) * crs;                                                \
          s_cb[j] += dn[j];                                                                     \
        }                                                                                       \
        if (g_ih) {                                                                             \
          const T *x4 = xp + r * gates, xm = x_mean[r], xr = x_rstd[r];                         \
          T *s_ig = s_cb + hidden, *s_ib = s_ig + gates;                                        \
          _Pragma("omp simd")                                                                   \
          for (long k = 0; k < gates; ++k) {                                                    \
            s_ig[k] += d4[k] * (x4[k] - xm) * xr;                                               \
            s_ib[k] += d4[k];                                                                   \
          }                                                                                     \
        }                                                                                       \
      }                                                                                         \
    }                                                                                           \
  }                                                                                           \
  /* out (parts, features): row p holds the sum over rows [bounds[p], bounds[p + 1]) of         \
   * grad * (x - mean) * rstd, a layer norm's gain gradient in one pass without a (rows, features)\
   * temporary; the ranges run in parallel. The caller zeroes out and adds its rows. */         \
  void lstm_ln_gain_grad_##SUFFIX(long parts, const long *bounds, long features, const T *restrict grad,\
                             const T *restrict x, const T *restrict mean, const T *restrict rstd,\
                             T *restrict out) {                                                 \
    _Pragma("omp parallel for num_threads(parts) schedule(static, 1)")                          \
    for (long part = 0; part < parts; ++part) {                                                 \
      T *sum = out + part * features;                                                           \
      for (long r = bounds[part]; r < bounds[part + 1]; ++r) {                                  \
        const T *g = grad + r * features, *xr = x + r * features;                               \
        const T m = mean[r], s = rstd[r];                                                       \
        _Pragma("omp simd")                                                                     \
        for (long j = 0; j < features; ++j) sum[j] += g[j] * (xr[j] - m) * s;                   \
      }                                                                                         \
    }                                                                                           \
  }

/* Backward of the input projection with one input feature, out (rows, cols) = x (rows) w (cols)
 * + b, in one pass over its gradient g (rows, cols): gx[r] = g[r] . w, and each row range
 * [bounds[p], bounds[p + 1]) adds its rows' sum of g[r] x[r] into gw[p] and of g[r] into gb[p]
 * (gw, gb: (parts, cols), zeroed by the caller); the ranges run in parallel. */
#define DEFINE_OUTER_BACKWARD(T, SUFFIX)                                                        \
  void lstm_outer_backward_##SUFFIX(long parts, const long *bounds, long cols,                  \
                                    const T *restrict g, const T *restrict w,                   \
                                    const T *restrict x, T *restrict gx, T *restrict gw,        \
                                    T *restrict gb) {                                           \
    _Pragma("omp parallel for num_threads(parts) schedule(static, 1)")                          \
    for (long part = 0; part < parts; ++part) {                                                 \
      T *sw = gw + part * cols, *sb = gb + part * cols;                                         \
      for (long r = bounds[part]; r < bounds[part + 1]; ++r) {                                  \
        const T *gr = g + r * cols, xr = x[r];                                                  \
        T dot = 0;                                                                              \
        _Pragma("omp simd reduction(+ : dot)")                                                  \
        for (long j = 0; j < cols; ++j) {                                                       \
          dot += gr[j] * w[j];                                                                  \
          sw[j] += gr[j] * xr;                                                                  \
          sb[j] += gr[j];                                                                       \
        }                                                                                       \
        gx[r] = dot;                                                                            \
      }                                                                                         \
    }                                                                                           \
  }
DEFINE_OUTER_BACKWARD(float, f32)
DEFINE_OUTER_BACKWARD(double, f64)

DEFINE_KERNELS(float, f32, exp_f32)
DEFINE_KERNELS(double, f64, exp)
DEFINE_LN_KERNELS(float, f32, sqrtf)
DEFINE_LN_KERNELS(double, f64, sqrt)

/* Builds with OpenMP (-fopenmp, linked to the libgomp torch itself loaded, so its threads are
 * torch's own) run row ranges in parallel; without it the pragmas are ignored. */
int lstm_parallel(void) {
#ifdef _OPENMP
  return 1;
#else
  return 0;
#endif
}

/* lstmkit's own float32 GEMM for the per-step recurrent products and the weight gradients,
 * written with GCC/clang vector extensions so that one source serves AVX-512 (16 floats a
 * vector), AVX2 (8) and NEON (4). B (k, cols) is packed once per call into panels of
 * PANEL_COLS = 2 vectors of columns, each panel k rows of PANEL_COLS contiguous floats (zero
 * padded), so the inner loop streams one panel from L1/L2 while a register block of up to
 * PANEL_ROWS rows x PANEL_COLS columns (2 x PANEL_ROWS accumulators) stays in registers. At the
 * LSTM's small per-step shapes this runs near the FMA peak, where MKL's GEMM reaches under half of
 * it on AMD CPUs (scripts/benchmark_gemm.py). Built where the ISA below is known. */
#if defined(__AVX512F__)
#define VEC_BYTES 64
#define PANEL_ROWS 8 /* 16 of 32 vector registers hold accumulators */
#elif defined(__AVX2__)
#define VEC_BYTES 32
#define PANEL_ROWS 6 /* 12 of 16 */
#elif defined(__aarch64__)
#define VEC_BYTES 16
#define PANEL_ROWS 8 /* 16 of 32 */
#endif

#ifdef VEC_BYTES
#define VEC_LEN (VEC_BYTES / 4)
#define PANEL_COLS (2 * VEC_LEN)
typedef float vfloat __attribute__((vector_size(VEC_BYTES), aligned(4))); /* unaligned access */

int lstm_panel_cols(void) { return PANEL_COLS; }

/* packed (panels, k, PANEL_COLS) from B = w.T (w (cols, k)) when `transposed`, else B = w. */
void lstm_panel_pack_f32(long k, long cols, const float *w, int transposed, float *packed) {
  long panels = (cols + PANEL_COLS - 1) / PANEL_COLS;
  for (long p = 0; p < panels; ++p)
    for (long kk = 0; kk < k; ++kk)
      for (long j = 0; j < PANEL_COLS; ++j) {
        long col = p * PANEL_COLS + j;
        float v = 0.0f;
        if (col < cols) v = transposed ? w[col * k + kk] : w[kk * cols + col];
        packed[(p * k + kk) * PANEL_COLS + j] = v;
      }
}

/* Loads and stores of one row of a block: whole vectors, or the first `left` < PANEL_COLS
 * columns through a zero-padded copy (the last panel of a width that is not a multiple). */
static inline void load_row(const float *src, long left, vfloat *lo, vfloat *hi) {
  if (left >= PANEL_COLS) {
    *lo = *(const vfloat *)src;
    *hi = *(const vfloat *)(src + VEC_LEN);
    return;
  }
  float tmp[PANEL_COLS] = {0};
  for (long j = 0; j < left; ++j) tmp[j] = src[j];
  *lo = *(const vfloat *)tmp;
  *hi = *(const vfloat *)(tmp + VEC_LEN);
}
static inline void store_row(float *dst, long left, vfloat lo, vfloat hi) {
  if (left >= PANEL_COLS) {
    *(vfloat *)dst = lo;
    *(vfloat *)(dst + VEC_LEN) = hi;
    return;
  }
  float tmp[PANEL_COLS];
  *(vfloat *)tmp = lo;
  *(vfloat *)(tmp + VEC_LEN) = hi;
  for (long j = 0; j < left; ++j) dst[j] = tmp[j];
}

/* c (rows, `left` columns; row stride ldc) = a (rows, k; row stride lda) @ one packed panel. */
static inline __attribute__((always_inline)) void panel_block_f32(
    const int rows, long k, const float *restrict a, long lda, const float *restrict panel,
    float *restrict c, long ldc, long left) {
  vfloat lo[PANEL_ROWS], hi[PANEL_ROWS];
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r) lo[r] = hi[r] = (vfloat){0};
  for (long kk = 0; kk < k; ++kk) {
    vfloat b_lo = *(const vfloat *)(panel + kk * PANEL_COLS);
    vfloat b_hi = *(const vfloat *)(panel + kk * PANEL_COLS + VEC_LEN);
#pragma GCC unroll 8
    for (int r = 0; r < rows; ++r) {
      vfloat a_rk = (vfloat){0} + a[r * lda + kk]; /* broadcast */
      lo[r] += a_rk * b_lo;
      hi[r] += a_rk * b_hi;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r) store_row(c + r * ldc, left, lo[r], hi[r]);
}

/* The height of the next row block: PANEL_ROWS, but the last two blocks share what is left so
 * that none is tiny. */
static inline long block_rows(long left) {
  if (left <= PANEL_ROWS) return left;
  return left >= 2 * PANEL_ROWS ? PANEL_ROWS : (left + 1) / 2;
}

#define PANEL_CASES(CALL)                                                                       \
  CASE(1, CALL) CASE(2, CALL) CASE(3, CALL) CASE(4, CALL) CASE(5, CALL) CASE(6, CALL)           \
  CASE_7_8(CALL)
#if PANEL_ROWS > 6
#define CASE_7_8(CALL) CASE(7, CALL) CASE(8, CALL)
#else
#define CASE_7_8(CALL)
#endif

/* out (n, cols) = a (n, k) @ B, with B packed by lstm_panel_pack_f32. */
void lstm_panel_gemm_f32(long n, long cols, long k, const float *a, const float *packed,
                         float *out) {
  for (long p = 0; p * PANEL_COLS < cols; ++p) {
    const long left = cols - p * PANEL_COLS;
    const float *panel = packed + p * k * PANEL_COLS;
    for (long r = 0; r < n;) {
      const long rows = block_rows(n - r);
      const float *a_r = a + r * k;
      float *c = out + r * cols + p * PANEL_COLS;
      switch (rows) {
#define CASE(R, CALL) \
  case R: CALL(R); break;
#define GEMM_BLOCK(R) panel_block_f32(R, k, a_r, k, panel, c, cols, left)
        PANEL_CASES(GEMM_BLOCK)
#undef GEMM_BLOCK
      }
      r += rows;
    }
  }
}

/* Weight gradients: c (m, n) (+)= a.T @ b for a (k, m) and b (k, n), row strides lda and ldb,
 * k large (all steps x batch). The reduction runs in chunks of TN_CHUNK rows of a and b, so a
 * chunk's panel of b stays in L1 while every row block of c passes over it. */
#define TN_CHUNK 64
static inline __attribute__((always_inline)) void tn_block_f32(
    const int rows, long kc, const float *restrict a, long lda, const float *restrict b, long ldb,
    float *restrict c, long ldc, long left, int load_c) {
  vfloat lo[PANEL_ROWS], hi[PANEL_ROWS];
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r) {
    lo[r] = hi[r] = (vfloat){0};
    if (load_c) load_row(c + r * ldc, left, &lo[r], &hi[r]);
  }
  for (long kk = 0; kk < kc; ++kk) {
    vfloat b_lo, b_hi;
    load_row(b + kk * ldb, left, &b_lo, &b_hi);
#pragma GCC unroll 8
    for (int r = 0; r < rows; ++r) {
      vfloat a_kr = (vfloat){0} + a[kk * lda + r];
      lo[r] += a_kr * b_lo;
      hi[r] += a_kr * b_hi;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r) store_row(c + r * ldc, left, lo[r], hi[r]);
}

static void tn_rows_f32(long m, long n, long k, const float *a, long lda, const float *b,
                        long ldb, float *c, int accumulate) {
  if (k == 0 && !accumulate)
    for (long i = 0; i < m * n; ++i) c[i] = 0.0f;
  for (long k0 = 0; k0 < k; k0 += TN_CHUNK) {
    const long kc = k - k0 < TN_CHUNK ? k - k0 : TN_CHUNK;
    const int load_c = accumulate || k0 > 0;
    for (long p = 0; p * PANEL_COLS < n; ++p) {
      const long left = n - p * PANEL_COLS;
      const float *b_p = b + k0 * ldb + p * PANEL_COLS;
      for (long r = 0; r < m;) {
        const long rows = block_rows(m - r);
        const float *a_r = a + k0 * lda + r;
        float *c_r = c + r * n + p * PANEL_COLS;
        switch (rows) {
#define TN_BLOCK(R) tn_block_f32(R, kc, a_r, lda, b_p, ldb, c_r, n, left, load_c)
          PANEL_CASES(TN_BLOCK)
#undef TN_BLOCK
#undef CASE
        }
        r += rows;
      }
    }
  }
}

/* Rows [bounds[p], bounds[p + 1]) of c, for p < parts, in parallel. */
void lstm_panel_gemm_tn_f32(long parts, const long *bounds, long n, long k, const float *a,
                            long lda, const float *b, long ldb, float *c, int accumulate) {
#pragma omp parallel for num_threads(parts) schedule(static, 1)
  for (long part = 0; part < parts; ++part) {
    const long r0 = bounds[part], r1 = bounds[part + 1];
    tn_rows_f32(r1 - r0, n, k, a + r0, lda, b, ldb, c + r0 * n, accumulate);
  }
}
#endif

/* One row range [bounds[part], bounds[part + 1]) of a layer's time loop, forward and backward:
 * the bodies of the functions below, in macros so that they run in an OpenMP region only when
 * there are several ranges. */
#define SEQUENCE_FORWARD_ROWS(T, SUFFIX)                                                        \
  {                                                                                             \
    const long row0 = bounds[part], row1 = bounds[part + 1];                                    \
    const int whole = row0 == 0 && row1 == batch;                                               \
    for (long t = 0; t < steps; ++t) {                                                          \
      long n = active_##SUFFIX(batch_sizes, t, row0, row1);                                     \
      if (n <= 0) break; /* batch sizes never grow again */                                     \
      long at = t * batch + row0; /* this range's first row of step t */                        \
      long ix = keep ? at : row0; /* ... in the buffers that keep every step or one */          \
      const T *h_prev = t ? out + (at - batch) * state : h0 + row0 * state;                     \
      const T *c_prev = t ? cells + (at - batch) * hidden : c0 + row0 * hidden;                 \
      T *z_t = ln_hh ? rec_pre_ln + ix * gates : z + row0 * gates;                              \
      T *h_t = out + at * state;                                                                \
      T *r_t = w_hr ? pre_proj + ix * hidden : h_t;                                             \
      T *a_t = acts + ix * gates, *c_t = cells + at * hidden, *s_t = tanh_cells + ix * hidden;  \
      int full = whole && n == batch;                                                           \
      mm_##SUFFIX(&blas, n, gates, state, h_prev, w_hh, 1, panel || full ? w_hh_packed : 0, z_t);\
      if (ln_hh)                                                                                \
        lstm_ln_forward_##SUFFIX(n, hidden, eps, xp + at * gates, z_t, ln_hh, g_c, b_c, a_t, c_prev,\
                            c_t, s_t, r_t, rec_stats + ix, rec_stats + tb + ix, cell_stats + ix,\
                            cell_stats + tb + ix, g_ih, b_ih, in_stats ? in_stats + ix : 0,     \
                            in_stats ? in_stats + tb + ix : 0);                                 \
      else                                                                                      \
        lstm_forward_##SUFFIX(n, hidden, xp + at * gates, z_t, a_t, c_prev, c_t, s_t, r_t);     \
      if (w_hr)                                                                                 \
        mm_##SUFFIX(&blas, n, state, hidden, r_t, w_hr, 1, panel || full ? w_hr_packed : 0, h_t);\
    }                                                                                           \
  }
#define SEQUENCE_BACKWARD_ROWS(T, SUFFIX)                                                       \
  {                                                                                             \
    const long row0 = bounds[part], row1 = bounds[part + 1];                                    \
    const int whole = row0 == 0 && row1 == batch;                                               \
    T *carry_h_r = carry_h + row0 * state, *carry_c_r = carry_c + row0 * hidden;                \
    T *dh_r = dh ? dh + row0 * hidden : 0;                                                      \
    for (long t = steps - 1; t >= 0; --t) {                                                     \
      long n = active_##SUFFIX(batch_sizes, t, row0, row1);                                     \
      if (n <= 0) continue; /* these rows start at a later step */                              \
      long at = t * batch + row0;                                                               \
      int full = whole && n == batch;                                                           \
      const T *dh_a = grad_out + at * state, *dh_b = carry_h_r;                                 \
      if (w_hr) {                                                                               \
        T *p = proj_in + at * state;                                                            \
        for (long k = 0; k < n * state; ++k) p[k] = dh_a[k] + carry_h_r[k];                     \
        mm_##SUFFIX(&blas, n, hidden, state, p, w_hr, 0, panel || full ? w_hr_packed : 0, dh_r);\
        dh_a = dh_r;                                                                            \
        dh_b = 0;                                                                               \
      }                                                                                         \
      const T *c_prev = t ? cells + (at - batch) * hidden : c0 + row0 * hidden;                 \
      const T *a_t = acts + at * gates, *s_t = tanh_cells + at * hidden;                        \
      /* with ln_sums, nothing after the loop reads d_cn, nor d_pre when d_in is given: they   \
       * hold one step, (B, ·), rewritten at every step */                                      \
      const long cn_ix = ln_sums ? row0 : at, pre_ix = ln_sums && d_in ? row0 : at;            \
      T *dp_t = d_pre + pre_ix * gates, *src = dp_t;                                            \
      if (ln_hh) {                                                                              \
        src = d_rec + at * gates;                                                               \
        lstm_ln_backward_##SUFFIX(n, hidden, dh_a, dh_b, carry_c_r, a_t, s_t, c_prev,           \
                             cells + at * hidden, cell_stats + at, cell_stats + tb + at, g_c,   \
                             rec_pre_ln + at * gates, rec_stats + at, rec_stats + tb + at, ln_hh,\
                             dp_t, src, d_cn + cn_ix * hidden, g_ih ? xp + at * gates : 0, g_ih,   \
                             in_stats ? in_stats + at : 0, in_stats ? in_stats + tb + at : 0,   \
                             d_in ? d_in + at * gates : 0,                                      \
                             ln_sums ? ln_sums + part * 14 * hidden : 0);                       \
      } else {                                                                                  \
        lstm_backward_##SUFFIX(n, hidden, dh_a, dh_b, carry_c_r, a_t, s_t, c_prev, dp_t);       \
      }                                                                                         \
      mm_##SUFFIX(&blas, n, state, gates, src, w_hh, 0, panel || full ? w_hh_packed : 0, carry_h_r);\
    }                                                                                           \
  }

/* Whole time loops: the per-step GEMMs go through `panel` (lstmkit's own GEMM above, weights
 * packed once per call) or else BLAS (`gemm`, Fortran `sgemm_`/`dgemm_`, column-major, found in
 * torch's own library by native.py; with MKL, float32 steps with the whole batch use `compute`
 * on weights packed once per call), and the elementwise work through the kernels above, so a
 * layer's forward or backward is one call with no per-step dispatch.
 * All buffers are row-major and contiguous, time-major: (T, B, ·). `batch_sizes` (NULL: all
 * rows at every step) is non-increasing, as in PackedSequence; step t touches its first rows.
 * Batch rows never interact, so a call splits them into ranges that run in parallel. */
#define DEFINE_SEQUENCE(T, SUFFIX)                                                              \
  typedef void (*gemm_##SUFFIX)(const char *, const char *, const int *, const int *,           \
                                const int *, const T *, const T *, const int *, const T *,      \
                                const int *, const T *, T *, const int *);                      \
  /* MKL's packed-matrix GEMM (cblas_?gemm_compute with a B packed once per call), or NULL. */ \
  typedef void (*compute_##SUFFIX)(int, int, int, int, int, int, const T *, int, const T *, int, \
                                   T, T *, int);                                                \
  /* lstmkit's packed GEMM (lstm_panel_gemm_f32), or NULL. */                                   \
  typedef void (*panel_##SUFFIX)(long, long, long, const T *, const T *, T *);                  \
  typedef struct {                                                                              \
    gemm_##SUFFIX gemm;                                                                         \
    compute_##SUFFIX compute;                                                                   \
    panel_##SUFFIX panel;                                                                       \
  } blas_##SUFFIX;                                                                              \
  /* out (n, cols) = a (n, k) @ op(w): op(w) = w.T for w (cols, k) when `transposed`, else w   \
   * (k, cols). `packed` (or NULL): op(w) packed by `panel`'s packing for any n, or by          \
   * cblas_?gemm_pack for the full batch (the caller passes NULL for other n). */               \
  static void mm_##SUFFIX(const blas_##SUFFIX *blas, long n, long cols, long k, const T *a,     \
                          const T *w, int transposed, const T *packed, T *out) {                \
    const int m_ = (int)cols, n_ = (int)n, k_ = (int)k;                                         \
    const T one = 1, zero = 0;                                                                  \
    if (blas->panel)                                                                            \
      blas->panel(n, cols, k, a, packed, out);                                                  \
    else if (packed && blas->compute) /* row-major, A as is, B packed */                        \
      blas->compute(101, 111, 151, n_, m_, k_, a, k_, packed, m_, zero, out, m_);               \
    else if (transposed)                                                                        \
      blas->gemm("T", "N", &m_, &n_, &k_, &one, w, &k_, a, &k_, &zero, out, &m_);               \
    else                                                                                        \
      blas->gemm("N", "N", &m_, &n_, &k_, &one, w, &m_, a, &k_, &zero, out, &m_);               \
  }                                                                                             \
  /* Rows of [row0, row1) active at step t. */                                                  \
  static inline long active_##SUFFIX(const long *batch_sizes, long t, long row0, long row1) {   \
    long end = batch_sizes && batch_sizes[t] < row1 ? batch_sizes[t] : row1;                    \
    return end - row0;                                                                          \
  }                                                                                             \
  /* Forward of one layer and direction. z: scratch (B, 4H). w_hr and pre_proj: NULL without    \
   * projection. ln_hh: NULL without layer norm (then g_c, b_c, rec_pre_ln, the stats unused);  \
   * rec_stats/cell_stats: (2, T, B), mean then rstd. g_ih (with ln_hh only): the input layer   \
   * norm runs in the loop (see lstm_ln_forward; in_stats like rec_stats, b_ih may be NULL);    \
   * NULL: xp is used as it is. Row ranges [bounds[p], bounds[p + 1]) for                       \
   * p < parts run in parallel (OpenMP builds; one after the other otherwise). */               \
  void lstm_sequence_forward_##SUFFIX(                                                          \
      gemm_##SUFFIX gemm, compute_##SUFFIX compute, panel_##SUFFIX panel, long steps, long batch, long parts,\
      const long *bounds, long hidden, long state, const long *batch_sizes, const T *xp,        \
      const T *h0, const T *c0, const T *w_hh, const T *w_hh_packed, const T *w_hr,             \
      const T *w_hr_packed, T *acts, T *cells, T *tanh_cells, T *out, T *pre_proj, T *z, T eps, \
      const T *ln_hh, const T *g_c, const T *b_c, T *rec_pre_ln, T *rec_stats, T *cell_stats,  \
      const T *g_ih, const T *b_ih, T *in_stats, int keep) {                                    \
    const long gates = 4 * hidden;                                                              \
    /* keep: every step's acts, tanh_cells, pre_proj, rec_pre_ln and stats stay for the         \
     * backward; 0 (inference): those buffers hold one step (B rows), reused at every step */   \
    const long tb = keep ? steps * batch : batch;                                               \
    const blas_##SUFFIX blas = {gemm, compute, panel};                                          \
    if (parts == 1) { /* no OpenMP region: a BLAS called inside one would start a nested team */\
      const long part = 0;                                                                      \
      SEQUENCE_FORWARD_ROWS(T, SUFFIX)                                                          \
    } else {                                                                                    \
      _Pragma("omp parallel for num_threads(parts) schedule(static, 1)")                        \
      for (long part = 0; part < parts; ++part)                                                 \
        SEQUENCE_FORWARD_ROWS(T, SUFFIX)                                                        \
    }                                                                                           \
  }                                                                                             \
  /* Backward of one layer and direction. grad_out (T, B, P) holds d loss / d output, with      \
   * h_n's gradient already added at each row's last step when lengths vary. carry_h (B, P):    \
   * in, h_n's gradient (zeros when lengths vary); out, d loss / d h0. carry_c (B, H): in, c_n's\
   * gradient; out, d loss / d c0. d_pre (T, B, 4H): d loss / d xp. proj_in (T, B, P), dh       \
   * (B, H): with projection only. d_rec (T, B, 4H) and d_cn (T, B, H): with layer norm only.   \
   * Rows of an output that no step touches are left as they are (the caller zeroes them).      \
   * With the input layer norm in the loop (g_ih), xp and in_stats as in the forward and d_in   \
   * (T, B, 4H) receives d loss / d xp. ln_sums (parts, 14H) or NULL: with layer norm, each   \
   * row range adds its rows' layer-norm parameter gradients into its row (lstm_ln_backward's   \
   * sums); then d_cn is scratch of one step, (B, H), and with d_in so is d_pre, (B, 4H).      \
   * Row ranges as in the forward. */                                                           \
  void lstm_sequence_backward_##SUFFIX(                                                         \
      gemm_##SUFFIX gemm, compute_##SUFFIX compute, panel_##SUFFIX panel, long steps, long batch, long parts,\
      const long *bounds, long hidden, long state, const long *batch_sizes, const T *grad_out,  \
      T *carry_h, T *carry_c, const T *acts, const T *cells, const T *tanh_cells, const T *c0,  \
      const T *w_hh, const T *w_hh_packed, const T *w_hr, const T *w_hr_packed, T *proj_in, T *dh,\
      T *d_pre, const T *ln_hh, const T *g_c, const T *rec_pre_ln, const T *rec_stats,          \
      const T *cell_stats, T *d_rec, T *d_cn, const T *xp, const T *g_ih, const T *in_stats,    \
      T *d_in, T *ln_sums) {                                                                    \
    const long gates = 4 * hidden, tb = steps * batch;                                          \
    const blas_##SUFFIX blas = {gemm, compute, panel};                                          \
    if (parts == 1) { /* no OpenMP region: a BLAS called inside one would start a nested team */\
      const long part = 0;                                                                      \
      SEQUENCE_BACKWARD_ROWS(T, SUFFIX)                                                         \
    } else {                                                                                    \
      _Pragma("omp parallel for num_threads(parts) schedule(static, 1)")                        \
      for (long part = 0; part < parts; ++part)                                                 \
        SEQUENCE_BACKWARD_ROWS(T, SUFFIX)                                                       \
    }                                                                                           \
  }                                                                                             \
  /* out (n, cols) = a (n, k) @ w.T through `gemm`/`compute`/`panel`: native.py checks each    \
   * binding with it. */                                                                        \
  void gemm_check_##SUFFIX(gemm_##SUFFIX gemm, compute_##SUFFIX compute, panel_##SUFFIX panel,  \
                           long n, long cols, long k, const T *a, const T *w, const T *packed,  \
                           T *out) {                                                            \
    const blas_##SUFFIX blas = {gemm, compute, panel};                                          \
    mm_##SUFFIX(&blas, n, cols, k, a, w, 1, packed, out);                                       \
  }

DEFINE_SEQUENCE(float, f32)
DEFINE_SEQUENCE(double, f64)
