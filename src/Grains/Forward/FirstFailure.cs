using Headwise.Contracts;

namespace Headwise.Grains.Forward;

/// <summary>
/// The one exception a caller of a parallel loop over head groups sees: several groups failing together fail for the
/// same reason, and the caller wants its code (a <see cref="HeadwiseException"/> when there is one), not a wrapper.
/// </summary>
internal static class FirstFailure
{
    public static Exception Of(AggregateException failure) =>
        failure.InnerExceptions.FirstOrDefault(x => x is HeadwiseException) ?? failure.InnerExceptions[0];
}
