namespace Headwise.Contracts;

/// <summary>
/// The shape of a model's attention layers. Zero means "the default" for the optional fields, as in the
/// gRPC contract; <see cref="Resolve"/> fills the defaults in and checks that the numbers fit together.
/// </summary>
public sealed record AttentionSpec
{
    /// <summary>D: the width of a token's input and output row.</summary>
    public int ModelDim { get; init; }
    /// <summary>Hq: query heads per layer.</summary>
    public int HeadCount { get; init; }
    /// <summary>Hkv: key/value heads per layer; 0 means <see cref="HeadCount"/> (plain MHA). Must divide it.</summary>
    public int KvHeadCount { get; init; }
    /// <summary>dh: width of one head; 0 means ModelDim / HeadCount.</summary>
    public int HeadDim { get; init; }
    /// <summary>Number of attention layers; 0 means 1.</summary>
    public int LayerCount { get; init; }
    /// <summary>Whether the Q, K and V projections have biases, and the output projection too unless <see cref="OutputBias"/> says otherwise.</summary>
    public bool Bias { get; init; }
    /// <summary>Multiplies Q·Kᵀ; 0 means 1/√dh.</summary>
    public float Scale { get; init; }
    /// <summary>Sliding window: query i sees keys j &gt; i − Window; 0 means none.</summary>
    public int Window { get; init; }
    /// <summary>RoPE base θ (10000 in Llama); 0 means no rotary position embedding.</summary>
    public float RopeTheta { get; init; }
    /// <summary>Leading dimensions of each head that RoPE rotates (even); 0 means all of head_dim when RoPE is on.</summary>
    public int RopeDim { get; init; }
    /// <summary>Whether the output projection has a bias b_O; null means the same as <see cref="Bias"/>. Qwen2: Bias true, OutputBias false.</summary>
    public bool? OutputBias { get; init; }
    /// <summary>Hugging Face rope_scaling of RoPE's frequencies (Llama 3.1: "llama3"); null means none. Needs RoPE.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>Whether the output projection has a bias b_O: <see cref="OutputBias"/>, else <see cref="Bias"/>.</summary>
    public bool HasOutputBias => OutputBias ?? Bias;

    /// <summary>Whether Q and K are rotated by RoPE at their absolute positions.</summary>
    public bool HasRope => RopeTheta > 0;

    /// <summary>Largest width of any dimension, so that a typo cannot ask for terabytes.</summary>
    public const int MaxDim = 65536;

    /// <summary>Hq / Hkv: query heads sharing one key/value head (one head grain).</summary>
    public int GroupSize => HeadCount / KvHeadCount;

    /// <summary>Hkv: the number of head grains per layer.</summary>
    public int GroupCount => KvHeadCount;

    /// <summary>
    /// This spec with every default filled in, or a <see cref="HeadwiseException"/> (InvalidArgument)
    /// naming the first field that does not fit.
    /// </summary>
    public AttentionSpec Resolve()
    {
        Check(ModelDim > 0 && ModelDim <= MaxDim, "spec.model_dim", $"must be in 1..{MaxDim}, got {ModelDim}");
        Check(HeadCount > 0 && HeadCount <= 1024, "spec.head_count", $"must be in 1..1024, got {HeadCount}");
        Check(KvHeadCount >= 0, "spec.kv_head_count", $"must be 0 (same as head_count) or positive, got {KvHeadCount}");
        int kv = KvHeadCount == 0 ? HeadCount : KvHeadCount;
        Check(HeadCount % kv == 0, "spec.kv_head_count", $"must divide head_count {HeadCount}, got {kv}");
        Check(HeadDim >= 0 && HeadDim <= MaxDim, "spec.head_dim", $"must be in 0..{MaxDim}, got {HeadDim}");
        if (HeadDim == 0)
            Check(ModelDim % HeadCount == 0, "spec.head_dim",
                $"is 0, so model_dim {ModelDim} must be divisible by head_count {HeadCount}");
        int headDim = HeadDim == 0 ? ModelDim / HeadCount : HeadDim;
        Check((long)headDim * HeadCount <= MaxDim, "spec.head_dim", $"head_count × head_dim must be at most {MaxDim}, got {(long)headDim * HeadCount}");
        Check(LayerCount >= 0 && LayerCount <= 1024, "spec.layer_count", $"must be in 0..1024, got {LayerCount}");
        Check(float.IsFinite(Scale) && Scale >= 0, "spec.scale", $"must be 0 (default 1/sqrt(head_dim)) or a positive finite number, got {Scale}");
        Check(Window >= 0, "spec.window", $"must be 0 (none) or positive, got {Window}");
        Check(float.IsFinite(RopeTheta) && RopeTheta >= 0, "spec.rope_theta", $"must be 0 (no RoPE) or a positive finite number, got {RopeTheta}");
        Check(RopeDim >= 0 && RopeDim <= headDim && RopeDim % 2 == 0, "spec.rope_dim", $"must be 0 (all of head_dim) or an even number up to head_dim {headDim}, got {RopeDim}");
        Check(RopeDim == 0 || RopeTheta > 0, "spec.rope_dim", $"is {RopeDim} but spec.rope_theta is 0 (no RoPE); set rope_theta too");
        Check(RopeTheta == 0 || headDim % 2 == 0, "spec.head_dim", $"must be even for RoPE, got {headDim}");
        Check(RopeScaling is null || RopeTheta > 0, "spec.rope_scaling", "is set but spec.rope_theta is 0 (no RoPE); set rope_theta too");
        RopeScaling?.Check();
        return this with
        {
            KvHeadCount = kv,
            HeadDim = headDim,
            LayerCount = LayerCount == 0 ? 1 : LayerCount,
            Scale = Scale == 0 ? 1f / MathF.Sqrt(headDim) : Scale,
            RopeDim = RopeTheta > 0 && RopeDim == 0 ? headDim : RopeDim,
            // Canonical: kept only where it differs from Bias, so equal specs are equal records and `with { Bias = … }` still moves both.
            OutputBias = HasOutputBias == Bias ? null : HasOutputBias,
        };
    }

    private static void Check(bool ok, string field, string problem)
    {
        if (!ok) throw HeadwiseException.Invalid($"{field} {problem}.");
    }
}
