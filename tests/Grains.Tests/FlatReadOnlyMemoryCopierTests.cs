using System.Runtime.InteropServices;
using Headwise.Grains;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using Orleans.Serialization.Cloning;
using Orleans.Serialization.Codecs;

namespace Headwise.Grains.Tests;

/// <summary>
/// <see cref="FlatReadOnlyMemoryCopier{T}"/> in Orleans' serializer: it is the copier a silo's container gives for a
/// <see cref="ReadOnlyMemory{T}"/> (what the memory storage's grain call copies), and its copies are deep: equal
/// values in a fresh array that later writes to the original do not reach, elements of other types copied one by one.
/// </summary>
public sealed class FlatReadOnlyMemoryCopierTests
{
    private static IServiceProvider Services(bool flat)
    {
        var services = new ServiceCollection().AddSerializer();
        if (flat) FlatMemoryCopies.Register(services);
        return services.BuildServiceProvider();
    }

    [Fact]
    public void Registered_it_replaces_the_element_by_element_copier_of_orleans()
    {
        Assert.IsType<ReadOnlyMemoryCopier<byte>>(Services(flat: false).GetRequiredService<IDeepCopierProvider>().GetDeepCopier<ReadOnlyMemory<byte>>());
        var provider = Services(flat: true).GetRequiredService<IDeepCopierProvider>();
        Assert.IsType<FlatReadOnlyMemoryCopier<byte>>(provider.GetDeepCopier<ReadOnlyMemory<byte>>());
        Assert.IsType<FlatReadOnlyMemoryCopier<float>>(provider.GetDeepCopier<ReadOnlyMemory<float>>());
    }

    [Theory]
    [InlineData(0, 1 << 20)]   // a whole array, as the storage serializer hands it over
    [InlineData(37, 4099)]     // a slice of a larger array
    public void A_stored_state_is_copied_whole_into_a_fresh_array(int offset, int length)
    {
        var copier = Services(flat: true).GetRequiredService<DeepCopier<GrainState<ReadOnlyMemory<byte>>>>();
        var bytes = new byte[offset + length + 11];
        new Random(length).NextBytes(bytes);
        var original = new GrainState<ReadOnlyMemory<byte>>(bytes.AsMemory(offset, length), "etag-1");

        var copy = copier.Copy(original);
        byte[] expected = bytes.AsSpan(offset, length).ToArray();
        bytes.AsSpan().Fill(0xAB); // the caller reuses its buffer: the copy must not see it
        Assert.Equal("etag-1", copy.ETag);
        Assert.Equal(expected, copy.State.ToArray());
        Assert.True(MemoryMarshal.TryGetArray(copy.State, out var segment));
        Assert.NotSame(bytes, segment.Array);
    }

    [Fact]
    public void Bytes_a_storage_serializer_wrote_are_shared_not_copied_and_the_state_around_them_is_copied()
    {
        var copier = Services(flat: true).GetRequiredService<DeepCopier<GrainState<ReadOnlyMemory<byte>>>>();
        var serializer = new ExactGrainStorageSerializer(Services(flat: true).GetRequiredService<Serializer>());
        var stored = serializer.Serialize(new byte[] { 1, 2, 3, 4, 5 }).ToMemory();
        Assert.True(MemoryMarshal.TryGetMemoryManager(stored, out StoredBytes? _));
        var original = new GrainState<ReadOnlyMemory<byte>>(stored, "etag-1");

        var copy = copier.Copy(original);
        Assert.NotSame(original, copy); // the storage grain sets its own ETag on the state it keeps
        Assert.Equal("etag-1", copy.ETag);
        Assert.True(copy.State.Span == stored.Span); // same bytes at the same address: no copy
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5 }, serializer.Deserialize<byte[]>(new BinaryData(copy.State)));

        // Whoever wants the array (Redis' client) gets all of it without a copy; a socket's send may pin it.
        Assert.True(MemoryMarshal.TryGetArray(stored, out var segment));
        Assert.Equal(stored.Length, segment.Count);
        Assert.Equal(0, segment.Offset);
        using (stored.Pin()) Assert.Equal(stored.Length, segment.Array!.Length);
    }

    [Fact]
    public void An_empty_memory_stays_empty()
    {
        var copier = Services(flat: true).GetRequiredService<DeepCopier<ReadOnlyMemory<byte>>>();
        Assert.True(copier.Copy(ReadOnlyMemory<byte>.Empty).IsEmpty);
        Assert.True(copier.Copy(new byte[5].AsMemory(2, 0)).IsEmpty);
    }

    [Fact]
    public void Elements_that_are_not_primitives_are_each_deep_copied()
    {
        var copier = Services(flat: true).GetRequiredService<DeepCopier<ReadOnlyMemory<List<int>>>>();
        var original = new[] { new List<int> { 1, 2 }, new List<int> { 3 } };

        var copy = copier.Copy(original).ToArray();
        original[0].Add(99);
        Assert.Equal([1, 2], copy[0]);
        Assert.Equal([3], copy[1]);
        Assert.NotSame(original[1], copy[1]);
    }

    [Fact]
    public void The_same_array_twice_in_one_copy_stays_one_array()
    {
        var copier = Services(flat: true).GetRequiredService<DeepCopier<(ReadOnlyMemory<byte>, ReadOnlyMemory<byte>)>>();
        var bytes = new byte[] { 1, 2, 3 };

        var (first, second) = copier.Copy((bytes, bytes));
        Assert.True(MemoryMarshal.TryGetArray(first, out var a));
        Assert.True(MemoryMarshal.TryGetArray(second, out var b));
        Assert.Same(a.Array, b.Array);
        Assert.NotSame(bytes, a.Array);
    }
}
