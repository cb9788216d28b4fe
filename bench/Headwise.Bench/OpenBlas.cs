using System.Runtime.InteropServices;

namespace Headwise.Bench;

/// <summary>
/// Debian's OpenBLAS through function pointers, for the bench's anchor only (never a dependency of src/).
/// Its core type and thread count are fixed through the C environment before the library loads: this
/// machine's environment may set OPENBLAS_CORETYPE=Haswell, which halves sgemm on AVX-512, and .NET's
/// Environment.SetEnvironmentVariable does not reach the getenv that OpenBLAS calls.
/// </summary>
internal static unsafe partial class OpenBlas
{
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private static delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    private static delegate* unmanaged<int, void> setThreads;
    private static delegate* unmanaged<sbyte*> getCorename;
    private static delegate* unmanaged<sbyte*> getConfig;

    public static string? LoadError { get; private set; }
    /// <summary>What OPENBLAS_CORETYPE was set to, and why.</summary>
    public static string CoreTypeSource { get; private set; } = "";

    /// <summary>
    /// OpenBLAS 0.3.21 (Debian 12) does not know this VM's Xeon (family 6 model 207) and falls back to its
    /// SSE3 "Prescott" kernels (32 GFLOP/s against 151 with SkylakeX here); Haswell halves AVX-512 machines.
    /// So the core type follows the instruction sets: AVX-512 → SkylakeX, AVX2 → Haswell, else OpenBLAS decides.
    /// </summary>
    private static string? BestCoreType() =>
        System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "SkylakeX"
        : System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "Haswell"
        : null;
    public static bool Loaded => sgemm != null;
    public static string CoreName => getCorename == null ? "?" : Marshal.PtrToStringUTF8((nint)getCorename()) ?? "?";
    public static string Config => getConfig == null ? "?" : Marshal.PtrToStringUTF8((nint)getConfig()) ?? "?";

    [LibraryImport("libc", EntryPoint = "unsetenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int UnsetEnvironment(string name);

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnvironment(string name, string value, int overwrite);

    /// <summary>Loads libopenblas with its own core detection and one thread; false (with <see cref="LoadError"/>) when it is not installed.</summary>
    public static bool TryLoad()
    {
        if (Loaded) return true;
        // The environment's own value is dropped; HEADWISE_OPENBLAS_CORETYPE overrides the choice from the CPU.
        var coreType = Environment.GetEnvironmentVariable("HEADWISE_OPENBLAS_CORETYPE");
        CoreTypeSource = string.IsNullOrEmpty(coreType) ? "from the CPU's features" : "from HEADWISE_OPENBLAS_CORETYPE";
        if (string.IsNullOrEmpty(coreType)) coreType = BestCoreType();
        CoreTypeSource = $"{coreType ?? "unset"}, {CoreTypeSource}";
        if (coreType is null) UnsetEnvironment("OPENBLAS_CORETYPE");
        else SetEnvironment("OPENBLAS_CORETYPE", coreType, 1);
        SetEnvironment("OPENBLAS_NUM_THREADS", "1", 1);
        SetEnvironment("OMP_NUM_THREADS", "1", 1);
        foreach (var name in new[] { "libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.21.so" })
        {
            if (!NativeLibrary.TryLoad(name, out var handle)) continue;
            sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)
                NativeLibrary.GetExport(handle, "cblas_sgemm");
            if (NativeLibrary.TryGetExport(handle, "openblas_set_num_threads", out var threads))
                setThreads = (delegate* unmanaged<int, void>)threads;
            if (NativeLibrary.TryGetExport(handle, "openblas_get_corename", out var core))
                getCorename = (delegate* unmanaged<sbyte*>)core;
            if (NativeLibrary.TryGetExport(handle, "openblas_get_config", out var config))
                getConfig = (delegate* unmanaged<sbyte*>)config;
            if (setThreads != null) setThreads(1);
            return true;
        }
        LoadError = "libopenblas.so.0 not found (apt-get install libopenblas0-pthread)";
        return false;
    }

    /// <summary>c[m, n] = alpha·a[m, k]·b[k, n] + beta·c (row-major; b transposed when <paramref name="transposeB"/>).</summary>
    public static void Sgemm(int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, bool transposeB, float beta, float* c, int ldc) =>
        sgemm(RowMajor, NoTrans, transposeB ? Trans : NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
