using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// One tensor the upload sends: <see cref="Target"/> (its name in the layout the gateway reads, layer renumbered)
/// holds <see cref="Shape"/>'s elements taken from <see cref="Source"/> at <see cref="ElementOffset"/> — the whole
/// source tensor, or Phi-3's rows of q, k or v inside the fused qkv_proj.
/// </summary>
internal sealed record PlannedTensor(string Target, long[] Shape, string Source, long[] SourceShape, long ElementOffset)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// Which checkpoint tensors hold a layer's attention, by architecture, and which ones must not be there (a bias the config
/// says is absent, OLMo-2's q/k norms): sending a layer without them would give other outputs than the checkpoint's.
/// </summary>
internal static class AttentionTensorPlan
{
    public const string Gpt2Prefix = "h.{layer}.attn.";
    public const string LinearPrefix = "model.layers.{layer}.self_attn.";

    /// <summary>The tensors of checkpoint layer <paramref name="source"/>, sent as layer <paramref name="target"/>.</summary>
    public static (IReadOnlyList<PlannedTensor> Send, IReadOnlyList<string> Forbidden) For(HuggingFaceConfig config, int source, int target,
        Func<string, bool> exists)
    {
        var spec = config.Spec.Resolve();
        long d = spec.ModelDim, q = (long)spec.HeadCount * spec.HeadDim, kv = (long)spec.KvHeadCount * spec.HeadDim;
        string to = Layer(config.Layout == WeightLayout.Gpt2 ? Gpt2Prefix : LinearPrefix, target);
        var send = new List<PlannedTensor>();
        var forbidden = new List<string>();

        if (config.Layout == WeightLayout.Gpt2)
        {
            // GPT2LMHeadModel saves "transformer.h.…", GPT2Model "h.…".
            string from = Layer(Gpt2Prefix, source);
            if (!exists(from + "c_attn.weight") && exists("transformer." + from + "c_attn.weight")) from = "transformer." + from;
            void Whole(string suffix, long[] shape) => send.Add(new PlannedTensor(to + suffix, shape, from + suffix, shape, 0));
            Whole("c_attn.weight", [d, 3 * d]);
            Whole("c_attn.bias", [3 * d]);
            Whole("c_proj.weight", [d, d]);
            Whole("c_proj.bias", [d]);
            return (send, forbidden);
        }

        string layer = Layer(LinearPrefix, source);
        void Linear(string suffix, long[] shape, bool present)
        {
            if (present) send.Add(new PlannedTensor(to + suffix, shape, layer + suffix, shape, 0));
            else forbidden.Add(layer + suffix);
        }
        if (config.ModelType == "phi3")
        {
            // Phi-3: qkv_proj [(Hq + 2·Hkv)·dh, D] stacks q, k, v as row blocks; row-major, so each block is one contiguous run.
            long[] fused = [q + 2 * kv, d];
            string name = layer + "qkv_proj.weight";
            send.Add(new PlannedTensor(to + "q_proj.weight", [q, d], name, fused, 0));
            send.Add(new PlannedTensor(to + "k_proj.weight", [kv, d], name, fused, q * d));
            send.Add(new PlannedTensor(to + "v_proj.weight", [kv, d], name, fused, (q + kv) * d));
            forbidden.Add(layer + "qkv_proj.bias");
        }
        else
        {
            Linear("q_proj.weight", [q, d], true);
            Linear("k_proj.weight", [kv, d], true);
            Linear("v_proj.weight", [kv, d], true);
            Linear("q_proj.bias", [q], spec.Bias);
            Linear("k_proj.bias", [kv], spec.Bias);
            Linear("v_proj.bias", [kv], spec.Bias);
        }
        Linear("o_proj.weight", [d, q], true);
        Linear("o_proj.bias", [d], spec.HasOutputBias);
        forbidden.Add(layer + "q_norm.weight");
        forbidden.Add(layer + "k_norm.weight");
        return (send, forbidden);
    }

    private static string Layer(string prefix, int layer) => prefix.Replace("{layer}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
