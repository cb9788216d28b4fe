namespace Headwise.Contracts;

/// <summary>
/// The one exception type Headwise raises on purpose. Its <see cref="Code"/> says what went wrong and its
/// message names the offending field. It crosses silos and the Orleans client intact
/// (Headwise.Contracts serializes it through a surrogate, so this assembly needs no Orleans).
/// </summary>
public sealed class HeadwiseException : Exception
{
    public HeadwiseException(ErrorCode code, string message) : base(message) => Code = code;

    public HeadwiseException(ErrorCode code, string message, Exception inner) : base(message, inner) => Code = code;

    /// <summary>What kind of failure this is.</summary>
    public ErrorCode Code { get; }

    internal static HeadwiseException Invalid(string message) => new(ErrorCode.InvalidArgument, message);
}
