namespace Headwise.Bench;

/// <summary>One attention layer to time: its sizes, the sequence length, and the mask.</summary>
/// <param name="ModelDim">D.</param>
/// <param name="HeadCount">Hq, query heads.</param>
/// <param name="KvHeadCount">Hkv, key/value heads (= head groups, = head grains).</param>
/// <param name="HeadDim">dh.</param>
/// <param name="Tokens">T, one sequence.</param>
public sealed record LayerShape(string Model, int ModelDim, int HeadCount, int KvHeadCount, int HeadDim, int Tokens, bool Causal)
{
    public int GroupSize => HeadCount / KvHeadCount;

    public override string ToString() => $"{Model} T={Tokens}{(Causal ? " causal" : "")}";

    /// <summary>
    /// Floating-point operations of one forward pass (2 per multiply-add): Q, K, V projections, Q·Kᵀ and
    /// weights·V over the visible (query, key) pairs only, and W_O. Softmax and bias are not counted.
    /// </summary>
    public double Flops
    {
        get
        {
            double t = Tokens, d = ModelDim, dh = HeadDim;
            double visiblePairs = Causal ? t * (t + 1) / 2 : t * t;
            double projections = 2 * t * d * (HeadCount + 2 * KvHeadCount) * dh;
            double attention = 2 * 2 * visiblePairs * dh * HeadCount;
            double output = 2 * t * HeadCount * dh * d;
            return projections + attention + output;
        }
    }

    /// <summary>The shapes issue 3 names: GPT-2 small at four lengths (causal and not), GPT-2 XL, an OLMo-7B-like layer, a decode step.</summary>
    public static IReadOnlyList<LayerShape> Standard { get; } =
    [
        new("gpt2-small", 768, 12, 12, 64, 128, false),
        new("gpt2-small", 768, 12, 12, 64, 128, true),
        new("gpt2-small", 768, 12, 12, 64, 512, false),
        new("gpt2-small", 768, 12, 12, 64, 512, true),
        new("gpt2-small", 768, 12, 12, 64, 1024, false),
        new("gpt2-small", 768, 12, 12, 64, 1024, true),
        new("gpt2-small", 768, 12, 12, 64, 2048, false),
        new("gpt2-small", 768, 12, 12, 64, 2048, true),
        new("gpt2-xl", 1600, 25, 25, 64, 1024, false),
        new("gpt2-xl", 1600, 25, 25, 64, 1024, true),
        new("olmo-7b-like", 4096, 32, 32, 128, 1024, false),
        new("olmo-7b-like", 4096, 32, 32, 128, 1024, true),
        new("gpt2-small decode", 768, 12, 12, 64, 1, true),
    ];
}
