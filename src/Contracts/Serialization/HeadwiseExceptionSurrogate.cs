namespace Headwise.Contracts.Serialization;

/// <summary>
/// <see cref="HeadwiseException"/> as Orleans serializes it: the code and the message, which is all a caller acts on
/// (the gateway turns both into a gRPC status). The exception lives in the Orleans-free Headwise.Client.
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.error")]
public struct HeadwiseExceptionSurrogate
{
    [Id(0)] public ErrorCode Code;
    [Id(1)] public string Message;
}

/// <summary>Between <see cref="HeadwiseException"/> and its Orleans wire shape, so its code survives every silo hop.</summary>
[RegisterConverter]
public sealed class HeadwiseExceptionConverter : IConverter<HeadwiseException, HeadwiseExceptionSurrogate>
{
    public HeadwiseException ConvertFromSurrogate(in HeadwiseExceptionSurrogate surrogate) => new(surrogate.Code, surrogate.Message);

    public HeadwiseExceptionSurrogate ConvertToSurrogate(in HeadwiseException value) => new() { Code = value.Code, Message = value.Message };
}
