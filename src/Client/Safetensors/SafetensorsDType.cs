namespace Headwise.Contracts;

/// <summary>The element types of the safetensors format that Headwise reads and writes.</summary>
public enum SafetensorsDType
{
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    BOOL,
}

/// <summary>The spec's names and byte sizes of <see cref="SafetensorsDType"/>.</summary>
public static class SafetensorsDTypes
{
    /// <summary>Bytes per element.</summary>
    public static int ByteSize(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 => 2,
        SafetensorsDType.I8 or SafetensorsDType.U8 or SafetensorsDType.BOOL => 1,
        _ => throw HeadwiseException.Invalid($"dtype {(int)dtype} is not a safetensors dtype; expected one of {AllNames}."),
    };

    /// <summary>The name the header uses ("F32", "BF16", …).</summary>
    public static string SpecName(this SafetensorsDType dtype)
    {
        _ = dtype.ByteSize(); // rejects values outside the enum
        return dtype.ToString();
    }

    /// <summary>The dtype the header names, or an InvalidArgument error naming <paramref name="name"/>.</summary>
    internal static SafetensorsDType Parse(string name, string tensorName) => name switch
    {
        "F64" => SafetensorsDType.F64,
        "F32" => SafetensorsDType.F32,
        "F16" => SafetensorsDType.F16,
        "BF16" => SafetensorsDType.BF16,
        "I64" => SafetensorsDType.I64,
        "I32" => SafetensorsDType.I32,
        "I16" => SafetensorsDType.I16,
        "I8" => SafetensorsDType.I8,
        "U8" => SafetensorsDType.U8,
        "BOOL" => SafetensorsDType.BOOL,
        _ => throw HeadwiseException.Invalid(
            $"tensor '{tensorName}' has dtype '{name}', which Headwise does not read; expected one of {AllNames}."),
    };

    private const string AllNames = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";
}
