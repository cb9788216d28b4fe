namespace Headwise.Contracts;

/// <summary>How a safetensors file names and shapes a layer's attention weights.</summary>
public enum WeightLayout
{
    /// <summary>Hugging Face GPT-2 Conv1D (y = x·W + b): c_attn.weight [D, 3D], c_proj.weight [D, D].</summary>
    Gpt2 = 1,
    /// <summary>torch.nn.Linear as in Llama/OLMo (y = x·Wᵀ + b): q_proj, k_proj, v_proj, o_proj.</summary>
    Linear = 2,
}
