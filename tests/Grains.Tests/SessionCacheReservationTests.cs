using Headwise.Contracts;
using Headwise.Grains.Decode;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Tests;

/// <summary>
/// Admission of new sessions' caches by their reservation at max_tokens: a silo takes sessions while their reserved
/// caches fit its cap and refuses the next one with ResourceExhausted instead of evicting live sessions; closing or
/// expiring a session frees its reservation; a re-fill (not a new session) is never refused.
/// </summary>
public sealed class SessionCacheReservationTests
{
    private const int HeadDim = 8, MaxTokens = 64;
    private static readonly long OneSession = SessionCaches.Reservation(batch: 1, HeadDim, MaxTokens, window: 0);

    private static HeadDecodeWork First(string session, int batch = 1) => new()
    {
        Session = session, Batch = batch, Tokens = 1, Position = 0, Input = [], Restart = true,
        MaxTokens = MaxTokens, NewSession = true,
    };

    [Fact]
    public void Sessions_are_admitted_while_their_reservations_fit_and_the_next_is_refused_naming_the_bytes()
    {
        var caches = new SessionCaches(Options.Create(new DecodeSessionOptions { CacheBytesPerSilo = 3 * OneSession }));
        Assert.Equal(2L * HeadDim * MaxTokens * sizeof(float), OneSession);
        for (int s = 0; s < 3; s++) caches.Start("m/0/0", First($"s{s}"), HeadDim, window: 0);
        Assert.Equal(3 * OneSession, caches.Committed);
        Assert.Equal(0, caches.Bytes); // reserved, not yet held

        var refused = Assert.Throws<HeadwiseException>(() => caches.Start("m/0/0", First("s3"), HeadDim, window: 0));
        Assert.Equal(ErrorCode.ResourceExhausted, refused.Code);
        Assert.Contains($"{3 * OneSession} of {3 * OneSession} bytes reserved (Headwise__Sessions__CacheBytesPerSilo)", refused.Message);
        Assert.Contains($"need {OneSession} more here", refused.Message);
        Assert.DoesNotContain("s3", refused.Message); // a session id is a bearer token

        // Every admitted session fills its caches to max_tokens without evicting another; each takes its whole
        // reservation at its first append and never grows past it.
        var rows = new float[HeadDim];
        for (int s = 0; s < 3; s++)
        {
            var sequences = caches.Find("m/0/0", $"s{s}")!;
            for (int t = 0; t < MaxTokens; t++)
            {
                sequences[0].Append(rows, rows, 1);
                Assert.Equal(OneSession, sequences[0].Bytes);
            }
            caches.Account("m/0/0", $"s{s}");
        }
        Assert.Equal(0, caches.Evictions);
        Assert.Equal(3 * OneSession, caches.Bytes);
        Assert.Equal(3 * OneSession, caches.Committed);

        // Closing a session frees its reservation for the next.
        caches.DropSession("s0");
        caches.Start("m/0/0", First("s3"), HeadDim, window: 0);
        Assert.Equal(3 * OneSession, caches.Committed);
    }

    [Fact]
    public void A_new_first_step_of_the_same_session_replaces_its_own_reservation()
    {
        var caches = new SessionCaches(Options.Create(new DecodeSessionOptions { CacheBytesPerSilo = OneSession }));
        caches.Start("m/0/0", First("a"), HeadDim, window: 0);
        caches.Start("m/0/0", First("a"), HeadDim, window: 0); // the first step failed elsewhere and is sent again
        Assert.Equal(OneSession, caches.Committed);
    }

    [Fact]
    public void A_refill_is_never_refused_and_the_cap_then_evicts_the_least_recently_used()
    {
        var caches = new SessionCaches(Options.Create(new DecodeSessionOptions { CacheBytesPerSilo = OneSession }));
        caches.Start("m/0/0", First("a"), HeadDim, window: 0);
        var refill = First("b") with { NewSession = false, Tokens = 10 };
        caches.Start("m/0/1", refill, HeadDim, window: 0);
        caches.Account("m/0/1", "b");
        Assert.Null(caches.Find("m/0/0", "a"));
        Assert.NotNull(caches.Find("m/0/1", "b"));
        Assert.Equal(1, caches.Evictions);
    }

    [Fact]
    public async Task An_expired_reservation_makes_room_for_a_new_session_at_once()
    {
        var caches = new SessionCaches(Options.Create(new DecodeSessionOptions { CacheBytesPerSilo = OneSession, CacheLeaseSeconds = 1 }));
        caches.Start("m/0/0", First("left"), HeadDim, window: 0);
        await Task.Delay(1500);
        caches.Start("m/0/0", First("next"), HeadDim, window: 0);
        Assert.Null(caches.Find("m/0/0", "left"));
        Assert.Equal(OneSession, caches.Committed);
    }

    [Theory]
    [InlineData(2, 0, 0, 0)]          // unbounded: no reservation
    [InlineData(2, 96, 0, 2 * 2 * 8 * 96 * 4)]
    [InlineData(2, 100, 0, 2 * 2 * 8 * 112 * 4)] // caches take whole tiles of 16 tokens
    [InlineData(1, 1000, 16, 2 * 8 * 32 * 4)]    // a window keeps at most two windows of rows
    public void A_reservation_is_K_and_V_of_every_sequence_at_max_tokens(int batch, int rows, int window, long bytes) =>
        Assert.Equal(bytes, SessionCaches.Reservation(batch, HeadDim, rows, window));
}
