using Headwise.Contracts;
using Headwise.Grains.Forward;
using Microsoft.Extensions.Options;

namespace Headwise.Grains.Tests.Forward;

public class PassMemoryBudgetTests
{
    private static PassMemoryBudget Budget(long bytes) => new(Options.Create(new ForwardLimits { PassMemoryBytes = bytes }));

    [Fact]
    public async Task Passes_past_the_budget_wait_in_order_and_are_let_in_as_others_finish()
    {
        var budget = Budget(100);
        var first = await budget.ReserveAsync(60, CancellationToken.None);
        var second = budget.ReserveAsync(50, CancellationToken.None);
        var third = budget.ReserveAsync(10, CancellationToken.None); // fits, but waits behind the second: first come first served
        await Task.Delay(50);
        Assert.False(second.IsCompleted);
        Assert.False(third.IsCompleted);
        Assert.Equal(60, budget.Held);

        first.Dispose();
        first.Dispose(); // a second release changes nothing
        var secondHeld = await second.WaitAsync(TimeSpan.FromSeconds(5));
        var thirdHeld = await third.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(60, budget.Held);
        secondHeld.Dispose();
        thirdHeld.Dispose();
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public async Task A_pass_larger_than_the_budget_is_refused_at_once_naming_the_setting()
    {
        var budget = Budget(100);
        var error = await Assert.ThrowsAsync<HeadwiseException>(() => budget.ReserveAsync(101, CancellationToken.None));
        Assert.Equal(ErrorCode.ResourceExhausted, error.Code);
        Assert.Contains("Headwise__PassMemoryBytes", error.Message);
        Assert.Equal(0, budget.Held);
    }

    [Fact]
    public async Task A_cancelled_wait_leaves_the_queue_and_does_not_hold_the_next_pass_back()
    {
        var budget = Budget(100);
        var first = await budget.ReserveAsync(90, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var cancelled = budget.ReserveAsync(50, cancel.Token);
        var next = budget.ReserveAsync(5, CancellationToken.None);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        // The cancelled one no longer stands in front: the small pass is let in without waiting for the first.
        var nextHeld = await next.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(95, budget.Held);
        nextHeld.Dispose();
        first.Dispose();
        Assert.Equal(0, budget.Held);
    }
}
