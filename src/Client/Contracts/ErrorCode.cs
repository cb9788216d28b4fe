namespace Headwise.Contracts;

/// <summary>Why a Headwise call failed; each code maps one-to-one to a gRPC status code.</summary>
public enum ErrorCode
{
    /// <summary>A field of the request is malformed (gRPC INVALID_ARGUMENT).</summary>
    InvalidArgument = 1,
    /// <summary>The named model or layer does not exist (gRPC NOT_FOUND).</summary>
    NotFound = 2,
    /// <summary>A model with that name exists already (gRPC ALREADY_EXISTS).</summary>
    AlreadyExists = 3,
    /// <summary>The model is not ready for this call, e.g. Forward before its weights (gRPC FAILED_PRECONDITION).</summary>
    FailedPrecondition = 4,
    /// <summary>The request is over a configured limit (gRPC RESOURCE_EXHAUSTED).</summary>
    ResourceExhausted = 5,
    /// <summary>The cluster cannot serve the call right now; retrying may help (gRPC UNAVAILABLE).</summary>
    Unavailable = 6,
    /// <summary>A bug or an unexpected failure inside Headwise (gRPC INTERNAL).</summary>
    Internal = 7,
    /// <summary>The call needs the cluster's API key and came without it or with another (gRPC UNAUTHENTICATED).</summary>
    Unauthenticated = 8,
    /// <summary>The call's deadline passed before the answer was ready; the work may or may not have been done (gRPC DEADLINE_EXCEEDED).
    /// Never retried by the SDK: the deadline is the caller's budget for the whole call.</summary>
    DeadlineExceeded = 9,
    /// <summary>The call was cancelled by the server or the transport, not by the caller's own token (gRPC CANCELLED). Never retried by the SDK.</summary>
    Cancelled = 10,
}
