using Grpc.Core;

namespace Headwise.Contracts;

/// <summary>The one-to-one map between <see cref="ErrorCode"/> and gRPC status codes, for both ends of the wire.</summary>
public static class ErrorCodeStatus
{
    public static StatusCode ToStatusCode(this ErrorCode code) => code switch
    {
        ErrorCode.InvalidArgument => StatusCode.InvalidArgument,
        ErrorCode.NotFound => StatusCode.NotFound,
        ErrorCode.AlreadyExists => StatusCode.AlreadyExists,
        ErrorCode.FailedPrecondition => StatusCode.FailedPrecondition,
        ErrorCode.ResourceExhausted => StatusCode.ResourceExhausted,
        ErrorCode.Unavailable => StatusCode.Unavailable,
        ErrorCode.Unauthenticated => StatusCode.Unauthenticated,
        _ => StatusCode.Internal,
    };

    /// <summary>The error code for a status a server sent; statuses Headwise never sends count as Internal,
    /// except transport failures, which count as Unavailable so callers may retry them.</summary>
    public static ErrorCode ToErrorCode(this StatusCode status) => status switch
    {
        StatusCode.InvalidArgument => ErrorCode.InvalidArgument,
        StatusCode.NotFound => ErrorCode.NotFound,
        StatusCode.AlreadyExists => ErrorCode.AlreadyExists,
        StatusCode.FailedPrecondition => ErrorCode.FailedPrecondition,
        StatusCode.ResourceExhausted => ErrorCode.ResourceExhausted,
        StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled => ErrorCode.Unavailable,
        StatusCode.Unauthenticated => ErrorCode.Unauthenticated,
        _ => ErrorCode.Internal,
    };
}
