using Headwise.Silo;
using Headwise.Silo.Gateway;
using Headwise.TestSupport;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;

namespace Headwise.Client.Tests;

public class LargeBlockMemoryPoolTests
{
    [Fact]
    public void Blocks_are_64_KB_reused_after_dispose_and_larger_requests_get_their_own_array()
    {
        using var pool = new LargeBlockMemoryPool();
        Assert.Equal(64 * 1024, pool.MaxBufferSize);

        var first = pool.Rent();
        Assert.Equal(LargeBlockMemoryPool.BlockBytes, first.Memory.Length);
        first.Memory.Span.Fill(7);
        var firstArray = System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(first.Memory, out var segment) ? segment.Array : null;
        first.Dispose();
        first.Dispose(); // a second dispose must not return the block twice
        Assert.Throws<ObjectDisposedException>(() => first.Memory);

        using var again = pool.Rent(100);
        using var other = pool.Rent();
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(again.Memory, out var againSegment));
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(other.Memory, out var otherSegment));
        Assert.Same(firstArray, againSegment.Array);
        Assert.NotSame(againSegment.Array, otherSegment.Array);

        using var large = pool.Rent(LargeBlockMemoryPool.BlockBytes * 3 + 1);
        Assert.True(large.Memory.Length >= LargeBlockMemoryPool.BlockBytes * 3 + 1);
    }

    [Fact]
    public void At_most_the_retained_number_of_blocks_is_kept()
    {
        using var pool = new LargeBlockMemoryPool();
        var rented = Enumerable.Range(0, LargeBlockMemoryPool.RetainedBlocks + 10).Select(_ => pool.Rent()).ToList();
        var arrays = rented.Select(r => System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(r.Memory, out var s) ? s.Array! : null!).ToHashSet();
        foreach (var block in rented) block.Dispose();

        var reused = Enumerable.Range(0, LargeBlockMemoryPool.RetainedBlocks + 10).Select(_ => pool.Rent()).ToList();
        int fromBefore = reused.Count(r => System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(r.Memory, out var s) && arrays.Contains(s.Array!));
        Assert.Equal(LargeBlockMemoryPool.RetainedBlocks, fromBefore);
        foreach (var block in reused) block.Dispose();
    }

    [Fact]
    public async Task The_silo_gives_Kestrel_the_large_block_pool()
    {
        var ports = FreePorts.Take(4);
        await using var silo = HeadwiseSilo.Build(
        [
            $"--Headwise:SiloPort={ports[0]}", $"--Headwise:GatewayPort={ports[1]}",
            $"--Headwise:GrpcPort={ports[2]}", $"--Headwise:WebPort={ports[3]}",
        ]);
        Assert.IsType<LargeBlockMemoryPoolFactory>(silo.Services.GetRequiredService<IMemoryPoolFactory<byte>>());
    }
}
