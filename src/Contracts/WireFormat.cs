namespace Headwise.Contracts;

/// <summary>How X and Z travel between silos.</summary>
public enum WireFormat
{
    /// <summary>float32, exact.</summary>
    F32 = 0,
    /// <summary>bfloat16 (round to nearest even): half the bytes, about 3 significant digits.</summary>
    Bf16 = 1,
}
