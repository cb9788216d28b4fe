namespace Headwise.Contracts.Tests;

/// <summary>What error messages quote of a caller's value is short and printable.</summary>
public class EchoedValueTests
{
    [Fact]
    public void A_short_printable_value_is_quoted_as_is() => Assert.Equal("h.{layer}.attn.", EchoedValue.Of("h.{layer}.attn."));

    [Fact]
    public void A_multi_megabyte_value_is_cut_and_says_how_long_it_was()
    {
        string echoed = EchoedValue.Of(new string('p', 3 << 20));
        Assert.StartsWith(new string('p', EchoedValue.MaxChars) + "…", echoed);
        Assert.EndsWith($"({3 << 20} characters)", echoed);
        Assert.True(echoed.Length < EchoedValue.MaxChars + 32, $"{echoed.Length} characters");
    }

    [Fact]
    public void Control_characters_are_not_echoed()
    {
        string echoed = EchoedValue.Of("a\nb\r\u0000c");
        Assert.Equal("a?b??c", echoed);
    }
}
