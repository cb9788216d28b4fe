using Headwise.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Headwise.Contracts.Tests;

/// <summary>
/// The SDK's records live in the Orleans-free Headwise.Client; Orleans moves them through the surrogates in
/// Headwise.Contracts. Each one comes back equal field by field, and a HeadwiseException keeps its code and message,
/// also when it travels as a plain Exception (how a grain call's failure crosses silos).
/// </summary>
public sealed class SdkRecordSerializationTests
{
    private static readonly Serializer Serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    private static T RoundTrip<T>(T value) => Serializer.Deserialize<T>(Serializer.SerializeToArray(value))!;

    [Fact]
    public void AttentionSpec_and_ModelDescription_keep_every_field()
    {
        var spec = new AttentionSpec
        {
            ModelDim = 512, HeadCount = 8, KvHeadCount = 2, HeadDim = 64, LayerCount = 3, Bias = true, Scale = 0.125f,
            Window = 128, RopeTheta = 10000f, RopeDim = 32,
        };
        Assert.Equal(spec, RoundTrip(spec));
        // Qwen2's bias on Q, K, V only, and Llama 3.1's rope_scaling: the fields the Hugging Face import added.
        var scaled = spec with
        {
            OutputBias = false,
            RopeScaling = new RopeScaling { Type = RopeScaling.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositions = 8192 },
        };
        Assert.Equal(scaled, RoundTrip(scaled));
        Assert.Null(RoundTrip(spec with { RopeScaling = null }).RopeScaling);
        Assert.Null(RoundTrip(spec).OutputBias);

        var model = new ModelDescription { Name = "m", Spec = spec, Ready = true, Heads = [new HeadLocation(1, 2, "silo-a")] };
        var back = RoundTrip(model);
        Assert.Equal(model.Name, back.Name);
        Assert.Equal(model.Spec, back.Spec);
        Assert.True(back.Ready);
        Assert.Equal(model.Heads, back.Heads);
    }

    [Fact]
    public void Forward_reports_keep_every_field()
    {
        var head = new HeadReport
        {
            Group = 3, Heads = [6, 7], Silo = "silo-b", Kernel = "simd", ComputeMs = 1.5, CallMs = 2.5, InputBytes = 1024, OutputBytes = 2048,
        };
        var back = RoundTrip(head);
        Assert.Equal(head with { Heads = back.Heads }, back);
        Assert.Equal(head.Heads, back.Heads);

        var traffic = new SiloTraffic { Silo = "silo-c", Groups = 4, BytesSent = 10, BytesReceived = 20 };
        Assert.Equal(traffic, RoundTrip(traffic));
    }

    [Theory]
    [InlineData(ErrorCode.InvalidArgument)]
    [InlineData(ErrorCode.DeadlineExceeded)]
    [InlineData(ErrorCode.Cancelled)]
    public void HeadwiseException_keeps_its_code_and_message_as_a_plain_Exception(ErrorCode code)
    {
        Exception error = new HeadwiseException(code, "spec.head_count must be in 1..1024, got 0.");
        var back = Assert.IsType<HeadwiseException>(RoundTrip(error));
        Assert.Equal(code, back.Code);
        Assert.Equal(error.Message, back.Message);
    }
}
