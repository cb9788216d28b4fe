using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization.Cloning;
using Orleans.Serialization.Codecs;
using Orleans.Serialization.Configuration;
using Orleans.Serialization.GeneratedCodeHelpers;

namespace Headwise.Grains;

/// <summary>
/// Deep copies of <see cref="ReadOnlyMemory{T}"/> in one block copy when <typeparamref name="T"/> is a primitive (bytes,
/// floats). Orleans' own copier (<see cref="ReadOnlyMemoryCopier{T}"/>) copies element by element through the element's
/// copier, an interface call per byte, and the embedded memory storage hands every stored state to its storage grain
/// as a <c>ReadOnlyMemory&lt;byte&gt;</c> that a local grain call deep-copies, on the way in and on the way out: a silo
/// prefilling 64 decode sessions at context 1024 spent 10% of its samples in that per-byte copy (perf), and a weight
/// upload in embedded mode paid it for every byte of the model. Other element types are copied as Orleans copies them.
/// <see cref="StoredBytes"/> are not copied at all.
/// </summary>
public sealed class FlatReadOnlyMemoryCopier<T> : IDeepCopier<ReadOnlyMemory<T>>
{
    private static readonly bool Flat = typeof(T).IsPrimitive;
    private readonly IDeepCopier<T> _elements;

    /// <param name="elements">The copier of one element, for element types that are not primitives.</param>
    public FlatReadOnlyMemoryCopier(IDeepCopier<T> elements) => _elements = OrleansGeneratedCodeHelper.UnwrapService(this, elements);

    /// <inheritdoc/>
    public ReadOnlyMemory<T> DeepCopy(ReadOnlyMemory<T> input, CopyContext context)
    {
        if (input.IsEmpty) return input;
        // A stored state's bytes are never written again: the copy may be the same bytes.
        if (input is ReadOnlyMemory<byte> bytes && MemoryMarshal.TryGetMemoryManager(bytes, out StoredBytes? _)) return input;
        var source = input.Span;
        var result = new T[source.Length];
        // A memory over a whole array is that array's copy for the rest of the copy (shared references stay shared).
        if (MemoryMarshal.TryGetArray(input, out var segment) && segment.Array!.Length == result.Length)
        {
            if (context.TryGetCopy(segment.Array, out T[]? existing)) return existing!;
            context.RecordCopy(segment.Array, result);
        }
        if (Flat)
        {
            source.CopyTo(result);
            return result;
        }
        for (int i = 0; i < source.Length; i++) result[i] = _elements.DeepCopy(source[i], context)!;
        return result;
    }
}

/// <summary>Where <see cref="FlatReadOnlyMemoryCopier{T}"/> replaces Orleans' copier of <see cref="ReadOnlyMemory{T}"/>.</summary>
public static class FlatMemoryCopies
{
    /// <summary>Makes <see cref="FlatReadOnlyMemoryCopier{T}"/> the copier of every <see cref="ReadOnlyMemory{T}"/> in place of Orleans' own.</summary>
    public static void Register(IServiceCollection services) =>
        // After every configuration: the assemblies' manifests (Orleans.Serialization's among them) add theirs first.
        services.PostConfigure<TypeManifestOptions>(options =>
        {
            options.Copiers.Remove(typeof(ReadOnlyMemoryCopier<>));
            options.Copiers.Add(typeof(FlatReadOnlyMemoryCopier<>));
        });
}
