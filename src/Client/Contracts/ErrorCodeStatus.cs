using Grpc.Core;

namespace Headwise.Contracts;

/// <summary>The one-to-one map between <see cref="ErrorCode"/> and gRPC status codes, for both ends of the wire.</summary>
public static class ErrorCodeStatus
{
    /// <summary>The gRPC status a gateway answers with for <paramref name="code"/>.</summary>
    public static StatusCode ToStatusCode(this ErrorCode code) => code switch
    {
        ErrorCode.InvalidArgument => StatusCode.InvalidArgument,
        ErrorCode.NotFound => StatusCode.NotFound,
        ErrorCode.AlreadyExists => StatusCode.AlreadyExists,
        ErrorCode.FailedPrecondition => StatusCode.FailedPrecondition,
        ErrorCode.ResourceExhausted => StatusCode.ResourceExhausted,
        ErrorCode.Unavailable => StatusCode.Unavailable,
        ErrorCode.Unauthenticated => StatusCode.Unauthenticated,
        ErrorCode.DeadlineExceeded => StatusCode.DeadlineExceeded,
        ErrorCode.Cancelled => StatusCode.Cancelled,
        _ => StatusCode.Internal,
    };

    /// <summary>The error code for a status a server sent; statuses Headwise never sends count as Internal.
    /// DEADLINE_EXCEEDED and CANCELLED keep codes of their own: folded into Unavailable they would invite a retry
    /// of a call whose budget is spent or that someone meant to stop.</summary>
    public static ErrorCode ToErrorCode(this StatusCode status) => status switch
    {
        StatusCode.InvalidArgument => ErrorCode.InvalidArgument,
        StatusCode.NotFound => ErrorCode.NotFound,
        StatusCode.AlreadyExists => ErrorCode.AlreadyExists,
        StatusCode.FailedPrecondition => ErrorCode.FailedPrecondition,
        StatusCode.ResourceExhausted => ErrorCode.ResourceExhausted,
        StatusCode.Unavailable => ErrorCode.Unavailable,
        StatusCode.DeadlineExceeded => ErrorCode.DeadlineExceeded,
        StatusCode.Cancelled => ErrorCode.Cancelled,
        StatusCode.Unauthenticated => ErrorCode.Unauthenticated,
        _ => ErrorCode.Internal,
    };
}
