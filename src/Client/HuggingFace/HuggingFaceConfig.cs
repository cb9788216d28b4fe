using System.Globalization;
using System.Text.Json;
using Headwise.Contracts;

namespace Headwise.Client;

/// <summary>
/// A checkpoint's config.json read as attention: the spec of every layer, each layer's sliding window, and which
/// tensors hold each layer's Q, K, V and output projections. Knows GPT-2, Llama, Mistral, Qwen2, OLMo and Phi-3; anything
/// else, or a setting Headwise does not compute (OLMo's clip_qkv, OLMo-2's q/k norms, yarn rope scaling, …), is an
/// InvalidArgument that names the config field.
/// </summary>
internal sealed class HuggingFaceConfig
{
    /// <summary>model_type values this reader knows, and the architectures entries that mean them.</summary>
    private static readonly Dictionary<string, string> Architectures = new(StringComparer.Ordinal)
    {
        ["GPT2LMHeadModel"] = "gpt2", ["GPT2Model"] = "gpt2",
        ["LlamaForCausalLM"] = "llama", ["LlamaModel"] = "llama",
        ["MistralForCausalLM"] = "mistral", ["MistralModel"] = "mistral",
        ["Qwen2ForCausalLM"] = "qwen2", ["Qwen2Model"] = "qwen2",
        ["OlmoForCausalLM"] = "olmo", ["OlmoModel"] = "olmo",
        ["Olmo2ForCausalLM"] = "olmo2", ["Olmo2Model"] = "olmo2",
        ["Phi3ForCausalLM"] = "phi3", ["Phi3Model"] = "phi3",
    };

    private const string Supported = "gpt2, llama, mistral, qwen2, olmo, phi3";

    private readonly JsonElement _root;

    private HuggingFaceConfig(JsonElement root, string modelType)
    {
        _root = root;
        ModelType = modelType;
    }

    /// <summary>The architecture, as config.json's model_type spells it.</summary>
    public string ModelType { get; }

    /// <summary>The attention spec of every layer of the checkpoint (Window is <see cref="LayerWindows"/>' common value, set per import).</summary>
    public AttentionSpec Spec { get; private set; } = null!;

    /// <summary>Per checkpoint layer, its sliding window (0: none).</summary>
    public int[] LayerWindows { get; private set; } = [];

    /// <summary>How the chosen layers travel: GPT-2's Conv1D layout, or nn.Linear q/k/v/o.</summary>
    public WeightLayout Layout => ModelType == "gpt2" ? WeightLayout.Gpt2 : WeightLayout.Linear;

    /// <summary>config.json's fields that this reader used, for messages.</summary>
    public string Describe() => ModelType == "gpt2"
        ? $"n_embd {Spec.ModelDim}, n_head {Spec.HeadCount}, n_layer {Spec.LayerCount}"
        : $"hidden_size {Spec.ModelDim}, num_attention_heads {Spec.HeadCount}, num_key_value_heads {Spec.KvHeadCount}, head_dim {Spec.HeadDim}";

    public static HuggingFaceConfig Read(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!Directory.Exists(directory))
            throw Invalid($"checkpoint directory '{directory}' does not exist.");
        if (!File.Exists(path))
            throw Invalid($"'{path}' not found; a Hugging Face checkpoint directory holds config.json beside its safetensors.");
        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new HeadwiseException(ErrorCode.InvalidArgument, $"'{path}' is not valid JSON ({e.Message}).", e);
        }
        if (root.ValueKind != JsonValueKind.Object)
            throw Invalid($"'{path}' holds a JSON {root.ValueKind}; expected an object.");

        var config = new HuggingFaceConfig(root, ModelTypeOf(root));
        config.Derive();
        return config;
    }

    /// <summary>model_type, else the first known entry of architectures; else the error naming both fields.</summary>
    private static string ModelTypeOf(JsonElement root)
    {
        string? modelType = root.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String ? type.GetString() : null;
        var architectures = root.TryGetProperty("architectures", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().Where(a => a.ValueKind == JsonValueKind.String).Select(a => a.GetString()!).ToArray()
            : [];
        if (modelType is not null && Architectures.ContainsValue(modelType)) return modelType;
        foreach (string architecture in architectures)
            if (Architectures.TryGetValue(architecture, out var known)) return known;
        throw Invalid(
            $"config.json: model_type {(modelType is null ? "is missing" : $"'{EchoedValue.Of(modelType)}'")} and architectures " +
            $"[{string.Join(", ", architectures.Select(a => EchoedValue.Of(a)))}] name no architecture Headwise imports; " +
            $"it looked for model_type ({Supported}) and architectures ({string.Join(", ", Architectures.Keys)}).");
    }

    private void Derive()
    {
        if (ModelType == "olmo2")
            throw Invalid("config.json: model_type 'olmo2' normalises q and k inside attention (self_attn.q_norm, self_attn.k_norm, RMSNorm over all heads), which Headwise does not compute.");
        if (ModelType == "gpt2")
        {
            DeriveGpt2();
            return;
        }

        int d = RequiredInt("hidden_size"), heads = RequiredInt("num_attention_heads"), layers = RequiredInt("num_hidden_layers");
        int kvHeads = OptionalInt("num_key_value_heads") ?? heads;
        int headDim = OptionalInt("head_dim") ?? (heads > 0 && d % heads == 0 ? d / heads
            : throw Invalid($"config.json: hidden_size {d} is not divisible by num_attention_heads {heads} and head_dim is not given."));
        double? partial = OptionalDouble("partial_rotary_factor");
        int ropeDim = partial is null or 1.0 ? 0 : (int)(headDim * partial.Value);
        if (partial is not null && (partial <= 0 || partial > 1 || ropeDim % 2 != 0))
            throw Invalid($"config.json: partial_rotary_factor {partial} × head_dim {headDim} must give an even number of rotated dims in 1..head_dim.");

        if (ModelType == "olmo" && OptionalDouble("clip_qkv") is double clip)
            throw Invalid($"config.json: clip_qkv is {clip.ToString(CultureInfo.InvariantCulture)}: OLMo clamps q, k and v to ±clip_qkv, which Headwise does not compute (it needs clip_qkv null).");

        bool attentionBias = ModelType switch
        {
            "llama" or "olmo" => OptionalBool("attention_bias") ?? false,
            "qwen2" => true,        // Qwen2: q_proj, k_proj, v_proj with bias, o_proj without
            _ => false,             // Mistral, Phi-3: no attention biases
        };
        Spec = new AttentionSpec
        {
            ModelDim = d,
            HeadCount = heads,
            KvHeadCount = kvHeads,
            HeadDim = headDim,
            LayerCount = layers,
            Bias = attentionBias,
            OutputBias = ModelType == "qwen2" ? false : attentionBias,
            RopeTheta = (float)(OptionalDouble("rope_theta") ?? RopeParameter("rope_theta") ?? 10000.0),
            RopeDim = ropeDim,
            RopeScaling = ReadRopeScaling(),
        };
        LayerWindows = Windows(layers);
    }

    private void DeriveGpt2()
    {
        int d = RequiredInt("n_embd"), heads = RequiredInt("n_head"), layers = RequiredInt("n_layer");
        if (OptionalBool("scale_attn_by_inverse_layer_idx") == true)
            throw Invalid("config.json: scale_attn_by_inverse_layer_idx is true: each layer's scores are divided by its index + 1, and a Headwise spec has one scale for all layers.");
        bool scaled = OptionalBool("scale_attn_weights") ?? true;
        Spec = new AttentionSpec
        {
            ModelDim = d, HeadCount = heads, LayerCount = layers, Bias = true, OutputBias = true,
            // GPT-2 without scale_attn_weights leaves Q·Kᵀ unscaled.
            Scale = scaled ? 0 : 1,
        };
        LayerWindows = new int[layers];
    }

    /// <summary>
    /// Sliding windows per layer: layer_types when the config lists them, else Qwen2's use_sliding_window from
    /// max_window_layers on, else sliding_window on every layer (Mistral, Phi-3).
    /// </summary>
    private int[] Windows(int layers)
    {
        int window = OptionalInt("sliding_window") ?? 0;
        var windows = new int[layers];
        if (_root.TryGetProperty("layer_types", out var types) && types.ValueKind == JsonValueKind.Array)
        {
            var names = types.EnumerateArray().Select(t => t.GetString() ?? "").ToArray();
            if (names.Length != layers)
                throw Invalid($"config.json: layer_types has {names.Length} entries; num_hidden_layers is {layers}.");
            for (int layer = 0; layer < layers; layer++)
                windows[layer] = names[layer] switch
                {
                    "full_attention" => 0,
                    "sliding_attention" when window > 0 => window,
                    "sliding_attention" => throw Invalid($"config.json: layer_types[{layer}] is 'sliding_attention' but sliding_window is not set."),
                    _ => throw Invalid($"config.json: layer_types[{layer}] is '{EchoedValue.Of(names[layer])}'; Headwise computes 'full_attention' and 'sliding_attention'."),
                };
            return windows;
        }
        if (ModelType == "qwen2")
        {
            if (OptionalBool("use_sliding_window") != true) return windows;
            int from = OptionalInt("max_window_layers") ?? 0;
            for (int layer = from; layer < layers; layer++) windows[layer] = window;
            return windows;
        }
        Array.Fill(windows, window);
        return windows;
    }

    /// <summary>rope_scaling: none, "default", "linear" or "llama3"; any other type is refused by name.</summary>
    private RopeScaling? ReadRopeScaling()
    {
        // transformers 5 writes rope_parameters (rope_type, rope_theta, and the scaling's fields) where 4.x wrote rope_scaling.
        if ((!_root.TryGetProperty("rope_scaling", out var scaling) || scaling.ValueKind == JsonValueKind.Null)
            && (!_root.TryGetProperty("rope_parameters", out scaling) || scaling.ValueKind == JsonValueKind.Null))
            return null;
        if (scaling.ValueKind != JsonValueKind.Object)
            throw Invalid($"config.json: rope_scaling is a JSON {scaling.ValueKind}; expected null or an object.");
        string? type = (scaling.TryGetProperty("rope_type", out var t) || scaling.TryGetProperty("type", out t)) && t.ValueKind == JsonValueKind.String
            ? t.GetString() : null;
        double Field(string name) => scaling.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number
            ? value.GetDouble()
            : throw Invalid($"config.json: rope_scaling.{name} is missing; rope_type '{type}' needs it.");
        switch (type)
        {
            case "default":
                return null;
            case RopeScaling.Linear:
                return new RopeScaling { Type = RopeScaling.Linear, Factor = (float)Field("factor") };
            case RopeScaling.Llama3:
                return new RopeScaling
                {
                    Type = RopeScaling.Llama3,
                    Factor = (float)Field("factor"),
                    LowFreqFactor = (float)Field("low_freq_factor"),
                    HighFreqFactor = (float)Field("high_freq_factor"),
                    OriginalMaxPositions = (int)Field("original_max_position_embeddings"),
                };
            default:
                throw Invalid($"config.json: rope_scaling.rope_type '{EchoedValue.Of(type ?? "")}' is not supported; Headwise computes 'linear' and 'llama3' (and none).");
        }
    }

    private double? RopeParameter(string name) =>
        _root.TryGetProperty("rope_parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object
        && parameters.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : null;

    private int RequiredInt(string name) => OptionalInt(name)
        ?? throw Invalid($"config.json has no '{name}'; model_type '{ModelType}' needs it ({(ModelType == "gpt2" ? "n_embd, n_head, n_layer" : "hidden_size, num_attention_heads, num_hidden_layers")}).");

    private int? OptionalInt(string name)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number)) return number;
        throw Invalid($"config.json: {name} is {value.GetRawText()}; expected an integer.");
    }

    private double? OptionalDouble(string name)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Number) return value.GetDouble();
        throw Invalid($"config.json: {name} is {value.GetRawText()}; expected a number.");
    }

    private bool? OptionalBool(string name)
    {
        if (!_root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind is JsonValueKind.True or JsonValueKind.False) return value.GetBoolean();
        throw Invalid($"config.json: {name} is {value.GetRawText()}; expected true or false.");
    }

    private static HeadwiseException Invalid(string message) => new(ErrorCode.InvalidArgument, message);
}
