// fusejit CUDA prelude: helpers every generated elementwise kernel may call.
//
// Pasted verbatim at the top of each generated source (NVRTC compiles one string, so there is
// nothing to #include from disk). Semantics follow numpy, op by op:
//   - integer arithmetic wraps in the op's dtype: int32/int64 + - * and negation go through
//     the unsigned type, because signed overflow is undefined behaviour in C++ and the
//     compiler may exploit it; narrower ints are promoted to int by C and cast back.
//   - // and % are Python's floor division and modulo (result takes the divisor's sign); an
//     integer division by zero gives 0, a float one gives inf/nan, as numpy does.
//   - ** on integers is exact repeated squaring, wrapping in the dtype.
// Macros in front of this text select how float16 is converted:
//   FJ_HAVE_CUDA_FP16  use <cuda_fp16.h> (__half2float / __float2half_rn);
//   FJ_HALF_PROVIDED   the includer defines fj_half, fj_h2f, fj_f2h, fj_d2h (host tests);
//   neither            raw 16-bit storage converted with the PTX cvt instructions.

#ifndef FJ_CUDA_PRELUDE
#define FJ_CUDA_PRELUDE

#if defined(FJ_HAVE_CUDA_FP16)
#include <cuda_fp16.h>
typedef __half fj_half;
__device__ __forceinline__ float fj_h2f(fj_half h) { return __half2float(h); }
__device__ __forceinline__ fj_half fj_f2h(float f) { return __float2half_rn(f); }
__device__ __forceinline__ fj_half fj_d2h(double d) { return __double2half(d); }
#elif !defined(FJ_HALF_PROVIDED)
typedef unsigned short fj_half;  // IEEE binary16 bits
__device__ __forceinline__ float fj_h2f(fj_half h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ fj_half fj_f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ fj_half fj_d2h(double d) {
    unsigned short h;
    asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d));
    return h;
}
#endif

// float16 ops compute in float32; rounding each result back keeps fused values equal to eager
__device__ __forceinline__ float fj_round_h(float x) { return fj_h2f(fj_f2h(x)); }

// V consecutive elements moved with one wide load/store (16 bytes at most)
template <typename T, int V>
struct alignas(sizeof(T) * V) fj_vec {
    T v[V];
};

// ---- classification (no reliance on the library's isnan overloads) ---------------------------
__device__ __forceinline__ bool fj_isnan(float x) { return x != x; }
__device__ __forceinline__ bool fj_isnan(double x) { return x != x; }
__device__ __forceinline__ bool fj_isinf(float x) { return fabsf(x) == __int_as_float(0x7f800000); }
__device__ __forceinline__ bool fj_isinf(double x) {
    return fabs(x) == __longlong_as_double(0x7ff0000000000000LL);
}
__device__ __forceinline__ bool fj_isfinite(float x) {
    return fabsf(x) < __int_as_float(0x7f800000);
}
__device__ __forceinline__ bool fj_isfinite(double x) {
    return fabs(x) < __longlong_as_double(0x7ff0000000000000LL);
}

// ---- activations ---------------------------------------------------------------------------
// float32: t = e**-|x| in (0, 1]; x >= 0: 1 / (1 + t), else t / (1 + t). The divisor is in
// [1, 2], where the fast division (__fdividef, 2 ulp) is accurate, and tiny results stay
// right. At most about 4 ulp (expf 2, the sum 0.5, the division 2); one expf, no IEEE division.
__device__ __forceinline__ float fj_sigmoid(float x) {
    const float t = expf(-fabsf(x));
    return __fdividef(x >= 0.0f ? 1.0f : t, 1.0f + t);
}
__device__ __forceinline__ double fj_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

// ---- wrapping arithmetic for 32- and 64-bit ints ------------------------------------------------
#define FJ_WRAP(T, U)                                                                            \
    __device__ __forceinline__ T fj_wadd(T a, T b) { return (T)((U)a + (U)b); }               \
    __device__ __forceinline__ T fj_wsub(T a, T b) { return (T)((U)a - (U)b); }               \
    __device__ __forceinline__ T fj_wmul(T a, T b) { return (T)((U)a * (U)b); }               \
    __device__ __forceinline__ T fj_wneg(T a) { return (T)((U)0 - (U)a); }                    \
    __device__ __forceinline__ T fj_wabs(T a) { return a < 0 ? fj_wneg(a) : a; }
FJ_WRAP(int, unsigned int)
FJ_WRAP(long long, unsigned long long)
#undef FJ_WRAP

// ---- Python floor division and modulo ---------------------------------------------------------
// Signed ints: b == 0 gives 0; b == -1 is special-cased because MIN / -1 overflows (it wraps
// to MIN, as numpy's result does) and MIN % -1 traps on some hardware.
#define FJ_SDIV(T)                                                                               \
    __device__ __forceinline__ T fj_floordiv(T a, T b) {                                        \
        if (b == 0) return (T)0;                                                                 \
        if (b == -1) return (T)(0ULL - (unsigned long long)(long long)a);                        \
        T q = (T)(a / b);                                                                        \
        if (((a < 0) != (b < 0)) && (T)(q * b) != a) q = (T)(q - 1);                           \
        return q;                                                                                \
    }                                                                                            \
    __device__ __forceinline__ T fj_mod(T a, T b) {                                             \
        if (b == 0 || b == -1) return (T)0;                                                      \
        T r = (T)(a % b);                                                                        \
        if (r != 0 && ((r < 0) != (b < 0))) r = (T)(r + b);                                      \
        return r;                                                                                \
    }
FJ_SDIV(signed char)
FJ_SDIV(short)
FJ_SDIV(int)
FJ_SDIV(long long)
#undef FJ_SDIV

__device__ __forceinline__ unsigned char fj_floordiv(unsigned char a, unsigned char b) {
    return b == 0 ? (unsigned char)0 : (unsigned char)(a / b);
}
__device__ __forceinline__ unsigned char fj_mod(unsigned char a, unsigned char b) {
    return b == 0 ? (unsigned char)0 : (unsigned char)(a % b);
}

// Floats: numpy's npy_divmod, so results match it bit for bit (the quotient is snapped to the
// nearest integer, the remainder takes the divisor's sign, zeros keep their sign), except that
// a zero remainder has the dividend's sign, as PyTorch's (fmod's zero).
#define FJ_FDIV(T, FMOD, FLOOR, COPYSIGN)                                                        \
    __device__ __forceinline__ T fj_floordiv(T a, T b) {                                        \
        if (b == (T)0) return a / b;                                                             \
        T mod = FMOD(a, b);                                                                      \
        T div = (a - mod) / b;                                                                   \
        if (mod != (T)0) {                                                                       \
            if ((b < (T)0) != (mod < (T)0)) div -= (T)1;                                         \
        }                                                                                        \
        T fd;                                                                                    \
        if (div != (T)0) {                                                                       \
            fd = FLOOR(div);                                                                     \
            if (div - fd > (T)0.5) fd += (T)1;                                                   \
        } else {                                                                                 \
            fd = COPYSIGN((T)0, a / b);                                                          \
        }                                                                                        \
        return fd;                                                                               \
    }                                                                                            \
    __device__ __forceinline__ T fj_mod(T a, T b) {                                             \
        T mod = FMOD(a, b);                                                                      \
        if (b == (T)0) return mod;                                                               \
        if (mod != (T)0) {                                                                       \
            if ((b < (T)0) != (mod < (T)0)) mod += b;                                            \
        }                                                                                        \
        return mod; /* a zero keeps fmod's sign, a's (PyTorch's remainder; numpy's is b's) */   \
    }
FJ_FDIV(float, fmodf, floorf, copysignf)
FJ_FDIV(double, fmod, floor, copysign)
#undef FJ_FDIV

// ---- integer power: exact, wrapping in the dtype ----------------------------------------------
// A negative exponent (an error in numpy) gives the truncated value of 1 / a**-b.
template <typename T>
__device__ __forceinline__ T fj_ipow(T a, T b) {
    if ((long long)b < 0) {
        if (a == (T)1) return (T)1;
        if ((long long)a == -1) return (T)(((long long)b & 1) ? -1 : 1);
        return (T)0;
    }
    unsigned long long base = (unsigned long long)(long long)a;
    unsigned long long e = (unsigned long long)(long long)b;
    unsigned long long r = 1;
    while (e) {
        if (e & 1ULL) r *= base;
        base *= base;
        e >>= 1;
    }
    return (T)r;
}

// ---- row kernels (fusejit/codegen/cuda_rows.py) ------------------------------------------------
// The expression language's max / min (the combine steps of amax / amin): NaN-propagating as
// numpy's (a NaN anywhere in a row gives NaN); which zero wins between -0.0 and +0.0 is
// unspecified.
template <typename T>
__device__ __forceinline__ T fj_rmax(T a, T b) { return (a != a || a > b) ? a : b; }
template <typename T>
__device__ __forceinline__ T fj_rmin(T a, T b) { return (a != a || a < b) ? a : b; }

// Online softmax: (m, s) is a running maximum and sum(exp(x - off(m))), with off(m) = m, or
// for the stable form eager uses, off(m) = m where m is finite and 0 elsewhere. Rescaling a
// zero sum is skipped: 0 * exp(inf) would be nan. A term met while the maximum is still -inf
// (so the term is -inf too) counts 0: it is exp(-inf - m) = 0 for the final m unless every
// element of the row is -inf, which the kernel settles at the end (see fj_online_sum).
__device__ __forceinline__ float fj_off(float m, bool stable) {
    return (stable && !fj_isfinite(m)) ? 0.0f : m;
}
__device__ __forceinline__ double fj_off(double m, bool stable) {
    return (stable && !fj_isfinite(m)) ? 0.0 : m;
}
__device__ __forceinline__ float fj_rescale(float s, float from, float to) {
    return (s == 0.0f || from == to) ? s : s * expf(from - to);
}
__device__ __forceinline__ double fj_rescale(double s, double from, double to) {
    return (s == 0.0 || from == to) ? s : s * exp(from - to);
}
__device__ __forceinline__ float fj_oexp(float x, float off) {
    return off == -__int_as_float(0x7f800000) ? 0.0f : expf(x - off);
}
__device__ __forceinline__ double fj_oexp(double x, double off) {
    return off == -__longlong_as_double(0x7ff0000000000000LL) ? 0.0 : exp(x - off);
}
// the sum of exp(x - m) over a row whose maximum is m (off(m) = m): nan when m is -inf, as
// (x - m) is -inf - -inf for every element
__device__ __forceinline__ float fj_online_sum(float s, float m) {
    return m == -__int_as_float(0x7f800000) ? __int_as_float(0x7fc00000) : s;
}
__device__ __forceinline__ double fj_online_sum(double s, double m) {
    return m == -__longlong_as_double(0x7ff0000000000000LL)
               ? __longlong_as_double(0x7ff8000000000000LL) : s;
}

#endif  // FJ_CUDA_PRELUDE
