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

DEFINE_KERNELS(float, f32, expf)
DEFINE_KERNELS(double, f64, exp)
