using Grpc.Core;
using Headwise.Contracts;

namespace Headwise.Silo.Gateway;

/// <summary>
/// The shared-memory ranges one Forward names (input_shm, output_shm), leased for the length of the call: a region
/// unregistered meanwhile stays mapped until Dispose. Either may be null (that tensor travels inline).
/// </summary>
internal sealed class SharedMemoryRanges : IDisposable
{
    private SharedMemoryRanges(SharedMemoryRange? input, SharedMemoryRange? output)
    {
        Input = input;
        Output = output;
    }

    public SharedMemoryRange? Input { get; }
    public SharedMemoryRange? Output { get; }

    public static SharedMemoryRanges Lease(SharedMemoryRegistry registry, ServerCallContext context, V1.ForwardRequest request)
    {
        var input = request.InputShm is { } inputRef ? registry.Lease(context, inputRef, "input_shm") : null;
        try
        {
            var output = request.OutputShm is { } outputRef ? registry.Lease(context, outputRef, "output_shm") : null;
            return new SharedMemoryRanges(input, output);
        }
        catch
        {
            input?.Region.Release();
            throw;
        }
    }

    /// <summary>output_shm must hold Y exactly: as many float32 bytes as X widened to float32 (<paramref name="outputBytes"/>).</summary>
    public void CheckOutput(long outputBytes)
    {
        if (Output is { } output && output.ByteSize != outputBytes)
            throw new HeadwiseException(ErrorCode.InvalidArgument,
                $"output_shm.byte_size is {output.ByteSize}; Y [batch, tokens, model_dim] in DTYPE_F32 needs {outputBytes}.");
    }

    public void Dispose()
    {
        Input?.Region.Release();
        Output?.Region.Release();
    }
}
