using Headwise.Client;
using Headwise.Contracts;

namespace Headwise.Cli;

/// <summary>
/// The X of one forward pass, [B, T, D], with optional valid lengths per sequence: drawn from a seed, or read
/// from a safetensors file.
/// </summary>
internal sealed record ForwardInput(FloatTensor Input, int[]? Lengths, string Source)
{
    public const string InputTensor = "input";
    public const string LengthsTensor = "lengths";

    /// <summary>
    /// X[b, t, c] ~ N(0, 1), drawn in row-major order from System.Random(seed) with the Box-Muller transform
    /// (both values of each pair used), so the same seed always gives the same input.
    /// </summary>
    public static ForwardInput Random(int batch, int tokens, int modelDim, int seed)
    {
        long count = (long)batch * tokens * modelDim;
        if (count > Array.MaxLength)
            throw new UsageException($"--batch {batch} × --tokens {tokens} × model_dim {modelDim} is {count} values; at most {Array.MaxLength} fit in memory.");
        var values = new float[count];
        var random = new Random(seed);
        for (long i = 0; i < count; i += 2)
        {
            double u1 = 1.0 - random.NextDouble(); // in (0, 1], so the log is finite
            double u2 = random.NextDouble();
            double radius = Math.Sqrt(-2.0 * Math.Log(u1));
            values[i] = (float)(radius * Math.Cos(2.0 * Math.PI * u2));
            if (i + 1 < count) values[i + 1] = (float)(radius * Math.Sin(2.0 * Math.PI * u2));
        }
        return new ForwardInput(new FloatTensor(values, batch, tokens, modelDim), null, $"(standard normal, seed {seed})");
    }

    /// <summary>
    /// The tensor "input" of the file, [B, T, D] or [T, D] (one sequence), F32, F16 or BF16, and its optional
    /// I32 tensor "lengths" [B]. Anything missing or malformed is a <see cref="UsageException"/>.
    /// </summary>
    public static async Task<ForwardInput> ReadAsync(string path, CancellationToken cancellationToken)
    {
        if (!File.Exists(path))
            throw new UsageException($"file '{path}' not found.");
        try
        {
            var file = await SafetensorsFile.ReadAsync(path, cancellationToken);
            if (!file.Tensors.TryGetValue(InputTensor, out var input))
                throw new UsageException(
                    $"{path}: tensor '{InputTensor}' is not in the file; expected X of shape [B, T, D] (F32, F16 or BF16).");
            int[] shape = input.Shape.Length switch
            {
                3 => [Dimension(input, 0, path), Dimension(input, 1, path), Dimension(input, 2, path)],
                2 => [1, Dimension(input, 0, path), Dimension(input, 1, path)],
                _ => throw new UsageException(
                    $"{path}: tensor '{InputTensor}' has shape {input.ShapeText}; expected [B, T, D] or [T, D]."),
            };
            int[]? lengths = null;
            if (file.Tensors.TryGetValue(LengthsTensor, out var lengthsTensor))
            {
                if (lengthsTensor.Shape.Length != 1 || lengthsTensor.Shape[0] != shape[0])
                    throw new UsageException(
                        $"{path}: tensor '{LengthsTensor}' has shape {lengthsTensor.ShapeText}; expected [{shape[0]}], one length per sequence.");
                lengths = lengthsTensor.ToInt32();
            }
            return new ForwardInput(new FloatTensor(input.ToFloat32(), shape), lengths, $"({input.DType} from {path})");
        }
        catch (HeadwiseException exception)
        {
            string message = exception.Message.StartsWith(path, StringComparison.Ordinal) ? exception.Message : $"{path}: {exception.Message}";
            throw new UsageException(message, exception);
        }
    }

    private static int Dimension(SafetensorsTensor tensor, int axis, string path) =>
        tensor.Shape[axis] is > 0 and <= int.MaxValue
            ? (int)tensor.Shape[axis]
            : throw new UsageException($"{path}: tensor '{tensor.Name}' has shape {tensor.ShapeText}; every dimension must be in 1..{int.MaxValue}.");
}
