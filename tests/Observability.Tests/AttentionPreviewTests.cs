using Headwise.Grains.Placement;
using Headwise.Grains.Telemetry;

namespace Headwise.Observability.Tests;

/// <summary>The dashboard's attention picture is the matrix itself up to 64 tokens and block means beyond.</summary>
public sealed class AttentionPreviewTests
{
    [Fact]
    public void Short_sequences_are_kept_exactly_and_only_sequence_zero_is_read()
    {
        const int tokens = 5, heads = 2;
        // [batch 2, g 2, T, T]: sequence 1 is all 7s, which must not show.
        var attention = new float[2 * heads * tokens * tokens];
        for (int i = 0; i < heads * tokens * tokens; i++) attention[i] = i;
        Array.Fill(attention, 7f, heads * tokens * tokens, heads * tokens * tokens);

        var preview = AttentionPreview.FromFirstSequence(attention, tokens, heads, firstHead: 4);

        Assert.Equal((5, 5), (preview.Tokens, preview.Size));
        Assert.Equal(new[] { 4, 5 }, preview.Heads);
        Assert.Equal(attention[..25], preview.Values[0]);
        Assert.Equal(attention[25..50], preview.Values[1]);
    }

    [Fact]
    public void Long_sequences_become_64_by_64_block_means_that_keep_the_causal_triangle()
    {
        const int tokens = 200;
        // Causal, uniform over the visible keys: p[q, k] = 1/(q+1) for k ≤ q.
        var attention = new float[tokens * tokens];
        for (int q = 0; q < tokens; q++)
            for (int k = 0; k <= q; k++)
                attention[q * tokens + k] = 1f / (q + 1);

        var preview = AttentionPreview.FromFirstSequence(attention, tokens, queryHeads: 1, firstHead: 0);

        Assert.Equal(AttentionPreview.MaxSize, preview.Size);
        var values = preview.Values[0];
        for (int row = 0; row < preview.Size; row++)
        {
            // Block means over whole query rows keep each row's mass: Σ over preview columns of mean·width = rows' mean sum = 1.
            double mass = Enumerable.Range(0, preview.Size).Sum(c => values[row * preview.Size + c] * ((c + 1) * tokens / preview.Size - c * tokens / preview.Size));
            Assert.Equal(1.0, mass, 4);
            for (int column = row + 1; column < preview.Size; column++)
                Assert.Equal(0f, values[row * preview.Size + column]);
            Assert.True(values[row * preview.Size + row] > 0, $"diagonal block {row} is empty");
        }
    }
}
