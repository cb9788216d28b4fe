using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Headwise.Kernels;

/// <summary>
/// The few vector operations the kernels need, behind static abstract members so one generic micro-kernel
/// serves every register width: the JIT specialises it per struct type argument, so the indirection costs
/// nothing at run time. (The runtime's own ISimdVector is not public in .NET 10.) <see cref="ScalarOps"/>
/// is the one-lane case, so machines without SIMD run the same code paths.
/// </summary>
internal unsafe interface IFloatVectorOps<TVector> where TVector : struct
{
    /// <summary>Lanes of one vector.</summary>
    static abstract int Count { get; }
    static abstract TVector Zero { get; }
    static abstract TVector Load(float* source);
    static abstract void Store(TVector value, float* destination);
    static abstract TVector Broadcast(float value);

    /// <summary>left·right + addend, fused where the hardware has FMA, a multiply and an add where it has not.</summary>
    static abstract TVector MultiplyAdd(TVector left, TVector right, TVector addend);
    static abstract TVector Add(TVector left, TVector right);
    static abstract TVector Multiply(TVector left, TVector right);

    /// <summary>The lane-wise maximum, with the hardware's rule for NaN (the kernels never feed it one).</summary>
    static abstract TVector Max(TVector left, TVector right);
    static abstract float MaxAcross(TVector value);
    /// <summary>Whether any lane exceeds <paramref name="limit"/> (false for NaN lanes).</summary>
    static abstract bool AnyGreaterThan(TVector value, float limit);
    static abstract float SumAcross(TVector value);

    /// <summary>
    /// e^x for x ≤ 0, within a few ulp (a degree-6 Taylor polynomial after k·ln2 is taken out). Below about −87
    /// (−∞, the kernels' mark for a masked key, included) the result is 0 or a tiny normal float ≤ 2^−125,
    /// never a denormal: on Intel cores every denormal result costs a microcode assist, which made the causal
    /// softmax (whose diagonal vectors carry −∞ lanes) 2× slower when measured. Callers that need masked lanes
    /// to weigh exactly 0 write the zeros themselves.
    /// </summary>
    static abstract TVector ExpNonPositive(TVector x);

    /// <summary>What <see cref="ExpMinus"/> subtracts, prepared once per row: −max (or −max·log₂e where the width works in base 2).</summary>
    static abstract TVector ExpOffset(float max);

    /// <summary>e^(x − max) for x ≤ max, with the offset from <see cref="ExpOffset"/>; the same accuracy and zeros as <see cref="ExpNonPositive"/>.</summary>
    static abstract TVector ExpMinus(TVector x, TVector offset);
}

/// <summary>The constants of the vector exponential: e^x = 2^k · e^r with k = round(x·log₂e), |r| ≤ ln2/2.</summary>
internal static class ExpConstants
{
    public const float Log2E = 1.44269504088896341f;
    // ln 2 split in two so k·ln2 is exact to float precision for |k| ≤ 127 (Cody–Waite).
    public const float Ln2High = 0.693359375f;
    public const float Ln2Low = -2.12194440e-4f;
    /// <summary>1.5·2²³: adding it rounds a float of magnitude below 2²² to an integer, which lands in the low mantissa bits.</summary>
    public const float RoundingMagic = 12582912f;
    /// <summary>e^x from here up is a normal float (e^−87 ≈ 1.6e−38 &gt; 2^−126); the generic widths return 0 below it.</summary>
    public const float Lowest = -87f;
    /// <summary>The base-2 path clamps its exponent here: 2^−125 and above are normal floats, so no lane ever becomes a denormal.</summary>
    public const float LowestPower2 = -125f;

    // 2^f on |f| ≤ 1/2 by its Taylor polynomial of degree 6, coefficients (ln 2)^n / n!: truncation ≤ 1.2e-7.
    public const float D1 = 0.693147181f, D2 = 0.240226507f, D3 = 0.0555041087f, D4 = 0.00961812911f,
        D5 = 0.00133335581f, D6 = 0.000154035304f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Pow2Taylor6(Vector512<float> f)
    {
        var p = Vector512.MultiplyAddEstimate(Vector512.Create(D6), f, Vector512.Create(D5));
        p = Vector512.MultiplyAddEstimate(p, f, Vector512.Create(D4));
        p = Vector512.MultiplyAddEstimate(p, f, Vector512.Create(D3));
        p = Vector512.MultiplyAddEstimate(p, f, Vector512.Create(D2));
        p = Vector512.MultiplyAddEstimate(p, f, Vector512.Create(D1));
        return Vector512.MultiplyAddEstimate(p, f, Vector512<float>.One);
    }

    // e^r on |r| ≤ ln2/2 by its Taylor polynomial of degree 6: truncation ≤ 0.347⁷/7! ≈ 1.3e-7, about 1 ulp.
    public const float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Taylor6(Vector512<float> r)
    {
        var p = Vector512.MultiplyAddEstimate(Vector512.Create(C6), r, Vector512.Create(C5));
        p = Vector512.MultiplyAddEstimate(p, r, Vector512.Create(C4));
        p = Vector512.MultiplyAddEstimate(p, r, Vector512.Create(C3));
        p = Vector512.MultiplyAddEstimate(p, r, Vector512.Create(C2));
        p = Vector512.MultiplyAddEstimate(p, r, Vector512<float>.One);
        return Vector512.MultiplyAddEstimate(p, r, Vector512<float>.One);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Taylor6(Vector256<float> r)
    {
        var p = Vector256.MultiplyAddEstimate(Vector256.Create(C6), r, Vector256.Create(C5));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(C4));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(C3));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256.Create(C2));
        p = Vector256.MultiplyAddEstimate(p, r, Vector256<float>.One);
        return Vector256.MultiplyAddEstimate(p, r, Vector256<float>.One);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Taylor6(Vector128<float> r)
    {
        var p = Vector128.MultiplyAddEstimate(Vector128.Create(C6), r, Vector128.Create(C5));
        p = Vector128.MultiplyAddEstimate(p, r, Vector128.Create(C4));
        p = Vector128.MultiplyAddEstimate(p, r, Vector128.Create(C3));
        p = Vector128.MultiplyAddEstimate(p, r, Vector128.Create(C2));
        p = Vector128.MultiplyAddEstimate(p, r, Vector128<float>.One);
        return Vector128.MultiplyAddEstimate(p, r, Vector128<float>.One);
    }
}

internal readonly unsafe struct Vector512Ops : IFloatVectorOps<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load(float* source) => Vector512.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Broadcast(float value) => Vector512.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> left, Vector512<float> right, Vector512<float> addend) =>
        Vector512.MultiplyAddEstimate(left, right, addend);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Add(Vector512<float> left, Vector512<float> right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Multiply(Vector512<float> left, Vector512<float> right) => left * right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Max(Vector512<float> left, Vector512<float> right) => Vector512.MaxNative(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector512<float> value) => Vector256Ops.MaxAcross(Vector256.MaxNative(value.GetLower(), value.GetUpper()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AnyGreaterThan(Vector512<float> value, float limit) => Vector512.GreaterThanAny(value, Vector512.Create(limit));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SumAcross(Vector512<float> value) => Vector256Ops.SumAcross(value.GetLower() + value.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpNonPositive(Vector512<float> x) => ExpMinus(x, ExpOffset(0f));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpOffset(float max) =>
        Vector512.Create(Avx512F.IsSupported ? -max * ExpConstants.Log2E : -max);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> ExpMinus(Vector512<float> x, Vector512<float> offset)
    {
        if (!Avx512F.IsSupported) return ExpGeneric(x + offset);
        // In base 2 with AVX-512: t = x·log₂e − max·log₂e in one FMA, clamped to 2^−125 (normal), k = round(t)
        // (vrndscaleps), 2^(t−k) by its Taylor polynomial, then ·2^k (vscalefps): 12 vector operations where
        // the base-e form with integer exponent tricks takes 19.
        var t = Vector512.MaxNative(Vector512.MultiplyAddEstimate(x, Vector512.Create(ExpConstants.Log2E), offset),
            Vector512.Create(ExpConstants.LowestPower2));
        var k = Avx512F.RoundScale(t, 0x08); // to nearest, exceptions suppressed
        return Avx512F.Scale(ExpConstants.Pow2Taylor6(t - k), k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ExpGeneric(Vector512<float> x)
    {
        var visible = Vector512.GreaterThanOrEqual(x, Vector512.Create(ExpConstants.Lowest));
        x = Vector512.MaxNative(x, Vector512.Create(ExpConstants.Lowest));
        var shifted = Vector512.MultiplyAddEstimate(x, Vector512.Create(ExpConstants.Log2E), Vector512.Create(ExpConstants.RoundingMagic));
        var k = shifted - Vector512.Create(ExpConstants.RoundingMagic);
        var r = Vector512.MultiplyAddEstimate(k, Vector512.Create(-ExpConstants.Ln2High), x);
        r = Vector512.MultiplyAddEstimate(k, Vector512.Create(-ExpConstants.Ln2Low), r);
        // The rounded k sits in the low mantissa bits of `shifted`; moved into the exponent field it is 2^k.
        var scale = (Vector512.ShiftLeft(shifted.AsInt32(), 23) + Vector512.Create(127 << 23)).AsSingle();
        return (ExpConstants.Taylor6(r) * scale) & visible;
    }
}

internal readonly unsafe struct Vector256Ops : IFloatVectorOps<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load(float* source) => Vector256.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector256<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Broadcast(float value) => Vector256.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> left, Vector256<float> right, Vector256<float> addend) =>
        Vector256.MultiplyAddEstimate(left, right, addend);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Add(Vector256<float> left, Vector256<float> right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Multiply(Vector256<float> left, Vector256<float> right) => left * right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Max(Vector256<float> left, Vector256<float> right) => Vector256.MaxNative(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector256<float> value) => Vector128Ops.MaxAcross(Vector128.MaxNative(value.GetLower(), value.GetUpper()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AnyGreaterThan(Vector256<float> value, float limit) => Vector256.GreaterThanAny(value, Vector256.Create(limit));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SumAcross(Vector256<float> value) => Vector128Ops.SumAcross(value.GetLower() + value.GetUpper());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpOffset(float max) => Vector256.Create(-max);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpMinus(Vector256<float> x, Vector256<float> offset) => ExpNonPositive(x + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpNonPositive(Vector256<float> x)
    {
        var visible = Vector256.GreaterThanOrEqual(x, Vector256.Create(ExpConstants.Lowest));
        x = Vector256.MaxNative(x, Vector256.Create(ExpConstants.Lowest));
        var shifted = Vector256.MultiplyAddEstimate(x, Vector256.Create(ExpConstants.Log2E), Vector256.Create(ExpConstants.RoundingMagic));
        var k = shifted - Vector256.Create(ExpConstants.RoundingMagic);
        var r = Vector256.MultiplyAddEstimate(k, Vector256.Create(-ExpConstants.Ln2High), x);
        r = Vector256.MultiplyAddEstimate(k, Vector256.Create(-ExpConstants.Ln2Low), r);
        var scale = (Vector256.ShiftLeft(shifted.AsInt32(), 23) + Vector256.Create(127 << 23)).AsSingle();
        return (ExpConstants.Taylor6(r) * scale) & visible;
    }
}

internal readonly unsafe struct Vector128Ops : IFloatVectorOps<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Load(float* source) => Vector128.Load(source);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector128<float> value, float* destination) => value.Store(destination);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Broadcast(float value) => Vector128.Create(value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> MultiplyAdd(Vector128<float> left, Vector128<float> right, Vector128<float> addend) =>
        Vector128.MultiplyAddEstimate(left, right, addend);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Add(Vector128<float> left, Vector128<float> right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Multiply(Vector128<float> left, Vector128<float> right) => left * right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max(Vector128<float> left, Vector128<float> right) => Vector128.MaxNative(left, right);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> value) =>
        MathF.Max(MathF.Max(value.GetElement(0), value.GetElement(1)), MathF.Max(value.GetElement(2), value.GetElement(3)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AnyGreaterThan(Vector128<float> value, float limit) => Vector128.GreaterThanAny(value, Vector128.Create(limit));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    // Spelled out: Vector128.Sum made the JIT keep a loop's running sum in memory (measured: the softmax 1.8× slower).
    public static float SumAcross(Vector128<float> value) =>
        (value.GetElement(0) + value.GetElement(1)) + (value.GetElement(2) + value.GetElement(3));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ExpOffset(float max) => Vector128.Create(-max);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ExpMinus(Vector128<float> x, Vector128<float> offset) => ExpNonPositive(x + offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ExpNonPositive(Vector128<float> x)
    {
        var visible = Vector128.GreaterThanOrEqual(x, Vector128.Create(ExpConstants.Lowest));
        x = Vector128.MaxNative(x, Vector128.Create(ExpConstants.Lowest));
        var shifted = Vector128.MultiplyAddEstimate(x, Vector128.Create(ExpConstants.Log2E), Vector128.Create(ExpConstants.RoundingMagic));
        var k = shifted - Vector128.Create(ExpConstants.RoundingMagic);
        var r = Vector128.MultiplyAddEstimate(k, Vector128.Create(-ExpConstants.Ln2High), x);
        r = Vector128.MultiplyAddEstimate(k, Vector128.Create(-ExpConstants.Ln2Low), r);
        var scale = (Vector128.ShiftLeft(shifted.AsInt32(), 23) + Vector128.Create(127 << 23)).AsSingle();
        return (ExpConstants.Taylor6(r) * scale) & visible;
    }
}

/// <summary>One lane: the path of a machine (or a test) without SIMD.</summary>
internal readonly unsafe struct ScalarOps : IFloatVectorOps<float>
{
    public static int Count => 1;
    public static float Zero => 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Load(float* source) => *source;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float value, float* destination) => *destination = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Broadcast(float value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MultiplyAdd(float left, float right, float addend) => left * right + addend;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Add(float left, float right) => left + right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Multiply(float left, float right) => left * right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Max(float left, float right) => left > right ? left : right;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(float value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AnyGreaterThan(float value, float limit) => value > limit;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SumAcross(float value) => value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ExpNonPositive(float x) => x >= ExpConstants.Lowest ? MathF.Exp(x) : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ExpOffset(float max) => -max;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ExpMinus(float x, float offset) => ExpNonPositive(x + offset);
}
