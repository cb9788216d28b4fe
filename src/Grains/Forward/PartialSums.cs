using System.Numerics.Tensors;
using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// The output projection's last step under row-parallel W_O: every silo's answer holds Σ_{h on it} Z_h·W_O[h rows],
/// so Concat(Z)·W_O + b_O = Σ_silos partial + b_O (Megatron's row-parallel layer, with the all-reduce done by the tree).
/// </summary>
public static class PartialSums
{
    /// <returns>Y: [rows, D] float32 bytes: the first answer's partial sum, which the root owns, with the rest added in.</returns>
    public static byte[] Add(IEnumerable<SiloPassAnswer> answers, int rows, int modelDim, ReadOnlySpan<float> bias)
    {
        byte[]? output = null;
        foreach (var answer in answers)
        {
            if (answer.Partial is not { } partial) continue;
            if (output is null) output = partial;
            else TensorPrimitives.Add(FloatBytes.AsFloats(output.AsSpan()), FloatBytes.AsFloats(partial), FloatBytes.AsFloats(output.AsSpan()));
        }
        output ??= new byte[checked(rows * modelDim * sizeof(float))];
        var y = FloatBytes.AsFloats(output.AsSpan());
        if (bias.Length == modelDim)
            for (int row = 0; row < rows; row++)
                TensorPrimitives.Add(y.Slice(row * modelDim, modelDim), bias, y.Slice(row * modelDim, modelDim));
        return output;
    }
}
