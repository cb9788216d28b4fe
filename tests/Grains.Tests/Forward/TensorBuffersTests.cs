using Headwise.Grains.Forward;

namespace Headwise.Grains.Tests.Forward;

/// <summary>The exact-length pool of a pass's big tensors: reuse by length, nothing small kept, a cap on what it keeps, the
/// lengths used least recently let go first when it is full.</summary>
public sealed class TensorBuffersTests
{
    private const int Big = 3 * 1024 * 1024;

    [Fact]
    public void A_returned_array_is_rented_again_for_its_length_only()
    {
        var buffers = new TensorBuffers();
        var first = buffers.Rent(Big);
        Assert.Equal(Big, first.Length);
        buffers.Return(first);
        Assert.Equal(Big, buffers.KeptBytes);

        var other = buffers.Rent(Big - 4);
        Assert.NotSame(first, other);
        Assert.Equal(Big - 4, other.Length);
        Assert.Same(first, buffers.Rent(Big));
        Assert.Equal(0, buffers.KeptBytes);
        Assert.NotSame(first, buffers.Rent(Big)); // handed out once only
    }

    [Fact]
    public void Small_arrays_and_nulls_are_not_kept()
    {
        var buffers = new TensorBuffers();
        var small = buffers.Rent(TensorBuffers.MinimumBytes - 1);
        buffers.Return(small);
        buffers.Return(null);
        Assert.Equal(0, buffers.KeptBytes);
        Assert.NotSame(small, buffers.Rent(TensorBuffers.MinimumBytes - 1));
    }

    [Fact]
    public void It_keeps_no_more_than_its_cap()
    {
        var buffers = new TensorBuffers(maxBytes: 2L * Big);
        var arrays = Enumerable.Range(0, 3).Select(_ => buffers.Rent(Big)).ToArray();
        foreach (var array in arrays) buffers.Return(array);
        Assert.Equal(2L * Big, buffers.KeptBytes);
        var again = Enumerable.Range(0, 3).Select(_ => buffers.Rent(Big)).ToArray();
        Assert.Equal(2, again.Count(a => arrays.Contains(a)));
        Assert.Equal(0, buffers.KeptBytes);
    }

    [Fact]
    public void A_full_pool_lets_go_of_the_length_used_least_recently_to_keep_the_one_returned()
    {
        const int a = 1 << 20, b = a + 4, c = a + 8;
        var buffers = new TensorBuffers(maxBytes: 2L * a + 16);
        var (first, second) = (buffers.Rent(a), buffers.Rent(b));
        buffers.Return(first);
        buffers.Return(second);
        Assert.Same(first, buffers.Rent(a)); // length a used again: b is now the one used least recently
        buffers.Return(first);
        var third = buffers.Rent(c);
        buffers.Return(third); // a, b and c do not fit together: b goes
        Assert.Equal(a + (long)c, buffers.KeptBytes);
        Assert.Same(third, buffers.Rent(c));
        Assert.Same(first, buffers.Rent(a));
        Assert.NotSame(second, buffers.Rent(b));
        Assert.Equal(0, buffers.KeptBytes);
    }

    [Fact]
    public async Task Concurrent_renters_never_share_an_array()
    {
        var buffers = new TensorBuffers();
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<byte[], int>(ReferenceEqualityComparer.Instance);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            for (int i = 0; i < 200; i++)
            {
                var array = buffers.Rent(TensorBuffers.MinimumBytes);
                Assert.True(seen.TryAdd(array, worker), "an array was handed to two renters at once");
                array[0] = (byte)worker;
                Thread.SpinWait(50);
                Assert.Equal((byte)worker, array[0]);
                Assert.True(seen.TryRemove(array, out _));
                buffers.Return(array);
            }
        })));
    }
}
