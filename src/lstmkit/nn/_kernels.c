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
