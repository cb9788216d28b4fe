using Headwise.Contracts;
using Headwise.Grains.Decode;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Tests;

/// <summary>
/// A session's kept inputs: after a prefill there is room for the steps that follow, so they append in place instead of
/// copying every kept row again; the room never takes the silo's input budget from a step that fits without it; and every
/// row read back is the one that was put.
/// </summary>
public sealed class SessionHistoryTests
{
    private const int ModelDim = 8;

    private static DecodeSessionState Session(int maxTokens, int window = 0) => new()
    {
        Model = "m",
        Layer = 0,
        MaxTokens = maxTokens,
        Spec = new AttentionSpec { ModelDim = ModelDim, HeadCount = 2, Window = window }.Resolve(),
        Projection = new SharedProjection([], [], []),
    };

    private static SessionBudget Budget(long bytes) => new(Options.Create(new DecodeSessionOptions { InputBytesPerSilo = bytes }));

    private static DecodeCommand Step(Random random, int batch, int tokens, List<float>[] sequences)
    {
        var x = new float[batch * tokens * ModelDim];
        for (int i = 0; i < x.Length; i++) x[i] = random.NextSingle() * 2 - 1;
        for (int s = 0; s < batch; s++) sequences[s].AddRange(x.AsSpan(s * tokens * ModelDim, tokens * ModelDim).ToArray());
        return new DecodeCommand { Batch = batch, Tokens = tokens, ModelDim = ModelDim, Input = FloatBytes.ToBytes(x) };
    }

    [Theory]
    [InlineData(1, 128)]
    [InlineData(3, 40)]
    public void The_steps_after_a_prefill_append_in_place_and_read_back_exactly(int batch, int prefill)
    {
        var random = new Random(batch * 1000 + prefill);
        var session = Session(maxTokens: 2048);
        var budget = Budget(1L << 30);
        var sequences = Enumerable.Range(0, batch).Select(_ => new List<float>()).ToArray();

        SessionHistory.Remember(session, Step(random, batch, prefill, sequences), budget, "s");
        session.Position += prefill;
        var buffers = session.History.ToArray();
        for (int t = 0; t < prefill; t++)
        {
            SessionHistory.Remember(session, Step(random, batch, 1, sequences), budget, "s");
            session.Position += 1;
            for (int s = 0; s < batch; s++) Assert.Same(buffers[s], session.History[s]);
        }

        Assert.Equal(budget.Bytes, session.ReservedBytes);
        for (int s = 0; s < batch; s++)
            Assert.Equal(sequences[s], session.History[s].AsSpan(0, session.Position * ModelDim).ToArray());
    }

    [Fact]
    public void Room_a_cap_cannot_hold_is_not_taken_and_the_step_that_fits_goes_through()
    {
        var random = new Random(7);
        var session = Session(maxTokens: 2048);
        // Exactly the prefill's rows: twice that does not fit.
        var budget = Budget(100L * ModelDim * sizeof(float));
        var sequences = new[] { new List<float>() };

        SessionHistory.Remember(session, Step(random, 1, 100, sequences), budget, "s");
        session.Position += 100;
        Assert.Equal(100L * ModelDim * sizeof(float), budget.Bytes);
        Assert.Equal(budget.Bytes, session.ReservedBytes);
        Assert.Equal(sequences[0], session.History[0].AsSpan(0, 100 * ModelDim).ToArray());

        // A step past the cap is refused with ResourceExhausted, naming the session.
        var refused = Assert.Throws<HeadwiseException>(() => SessionHistory.Remember(session, Step(random, 1, 1, sequences), budget, "s-capped"));
        Assert.Equal(ErrorCode.ResourceExhausted, refused.Code);
        Assert.Contains("s-capped", refused.Message);
    }

    [Theory]
    [InlineData(100, 0, 80, 100)]  // twice the prefill, but never more room than max_tokens
    [InlineData(2048, 16, 20, 31)] // a window keeps at most window − 1 + max(window, 16) rows before Forget compacts
    [InlineData(2048, 5, 20, 20)]  // a small window: Forget compacts only after 16 dead rows
    [InlineData(2048, 0, 10, 20)]  // twice what is needed
    public void Room_is_bounded_by_what_the_session_can_still_keep(int maxTokens, int window, int prefill, int expectedRows)
    {
        var session = Session(maxTokens, window);
        var budget = Budget(1L << 30);
        SessionHistory.Remember(session, Step(new Random(1), 1, prefill, [new List<float>()]), budget, "s");
        Assert.Equal(expectedRows * ModelDim, session.History[0].Length);
    }

    [Fact]
    public void Near_the_cap_a_history_grows_by_doubling_or_is_refused_never_copied_on_every_step()
    {
        var random = new Random(3);
        var session = Session(maxTokens: 2048);
        var budget = Budget(300L * ModelDim * sizeof(float));
        var sequences = new[] { new List<float>() };
        SessionHistory.Remember(session, Step(random, 1, 100, sequences), budget, "s");
        session.Position += 100;
        var buffer = session.History[0];
        for (int t = 0; t < 100; t++)
        {
            SessionHistory.Remember(session, Step(random, 1, 1, sequences), budget, "s");
            session.Position += 1;
            Assert.Same(buffer, session.History[0]);
        }
        // Twice the need (402 rows) and twice the old length (400) are both past the cap of 300: refused, nothing taken.
        long before = budget.Bytes;
        var refused = Assert.Throws<HeadwiseException>(() => SessionHistory.Remember(session, Step(random, 1, 1, sequences), budget, "s"));
        Assert.Equal(ErrorCode.ResourceExhausted, refused.Code);
        Assert.Equal(before, budget.Bytes);
        Assert.Same(buffer, session.History[0]);
    }

    [Fact]
    public void A_first_step_started_again_after_a_failure_does_not_keep_the_failed_ones_reservation()
    {
        var random = new Random(4);
        var session = Session(maxTokens: 2048);
        var budget = Budget(1L << 30);
        SessionHistory.Remember(session, Step(random, 2, 50, [new List<float>(), new List<float>()]), budget, "s");
        // What the session's log does when a first step fails: the batch is open again.
        session.Batch = 0;
        var sequences = new[] { new List<float>() };
        SessionHistory.Remember(session, Step(random, 1, 50, sequences), budget, "s");
        Assert.Equal(budget.Bytes, session.ReservedBytes);
        Assert.Equal(100L * ModelDim * sizeof(float), budget.Bytes);
        Assert.Equal(sequences[0], session.History[0].AsSpan(0, 50 * ModelDim).ToArray());
    }
}
