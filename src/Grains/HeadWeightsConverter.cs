using Headwise.Contracts;
using Headwise.Kernels;

namespace Headwise.Grains;

/// <summary>Turns a group's stored bytes into the kernel's float form, checking every size against the spec.</summary>
public static class HeadWeightsConverter
{
    public static HeadGroupWeights ToKernelWeights(AttentionSpec spec, GroupWeights weights)
    {
        var shape = new HeadGroupShape(spec.ModelDim, spec.HeadDim, spec.GroupSize);
        if (weights.Group < 0 || weights.Group >= spec.GroupCount)
            throw Invalid($"group is {weights.Group}; the spec has groups 0..{spec.GroupCount - 1}.");
        var query = Floats(weights.Query, spec.ModelDim * shape.QueryWidth, "W_Q");
        var key = Floats(weights.Key, spec.ModelDim * spec.HeadDim, "W_K");
        var value = Floats(weights.Value, spec.ModelDim * spec.HeadDim, "W_V");
        Floats(weights.Output, shape.QueryWidth * spec.ModelDim, "W_O rows");
        float[]? queryBias = null, keyBias = null, valueBias = null;
        if (spec.Bias)
        {
            queryBias = Floats(weights.QueryBias, shape.QueryWidth, "b_Q");
            keyBias = Floats(weights.KeyBias, spec.HeadDim, "b_K");
            valueBias = Floats(weights.ValueBias, spec.HeadDim, "b_V");
        }
        return new HeadGroupWeights(shape, query, key, value, queryBias, keyBias, valueBias);
    }

    private static float[] Floats(byte[]? bytes, int count, string name)
    {
        if (bytes is null)
            throw Invalid($"{name} is missing.");
        if (bytes.Length != count * sizeof(float))
            throw Invalid($"{name} has {bytes.Length} bytes; the spec needs {count} float32 values ({count * sizeof(float)} bytes).");
        return FloatBytes.ToFloats(bytes);
    }

    private static HeadwiseException Invalid(string message) => new(ErrorCode.InvalidArgument, message);
}
