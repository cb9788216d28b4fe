using Orleans.Serialization;
using Orleans.Storage;

namespace Headwise.Grains;

/// <summary>
/// Orleans' binary storage format, byte for byte what <see cref="OrleansGrainStorageSerializer"/> writes and reads, but
/// written through the serializer's pooled buffers into one array of the state's exact length. Orleans' own grows an
/// <c>ArrayBufferWriter</c> from 256 bytes by doubling: a stored state cost about twice its size in arrays thrown away,
/// a copy at every doubling, and the array kept was up to twice too long. Every weight upload and every decode step's
/// stored inputs pass through here. The array is handed out as <see cref="StoredBytes"/>: never written again, so the
/// embedded storage's grain calls share it rather than copy it.
/// </summary>
public sealed class ExactGrainStorageSerializer(Serializer serializer) : IGrainStorageSerializer
{
    /// <inheritdoc/>
    public BinaryData Serialize<T>(T? input) => new(new StoredBytes(serializer.SerializeToArray(input)).Memory);

    /// <inheritdoc/>
    public T? Deserialize<T>(BinaryData input) => serializer.Deserialize<T>(input.ToMemory());
}
