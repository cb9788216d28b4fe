using Grpc.Core;
using Headwise.Contracts;

namespace Headwise.Client.Tests;

/// <summary>The map between ErrorCode and gRPC status is one-to-one, both ways, for every code.</summary>
public sealed class ErrorCodeStatusTests
{
    [Fact]
    public void Every_code_has_a_status_of_its_own_that_maps_back_to_it()
    {
        var codes = Enum.GetValues<ErrorCode>();
        var statuses = codes.Select(code => code.ToStatusCode()).ToArray();
        Assert.Equal(codes.Length, statuses.Distinct().Count());
        foreach (var code in codes)
            Assert.Equal(code, code.ToStatusCode().ToErrorCode());
    }

    [Theory]
    [InlineData(StatusCode.DeadlineExceeded, ErrorCode.DeadlineExceeded)]
    [InlineData(StatusCode.Cancelled, ErrorCode.Cancelled)]
    [InlineData(StatusCode.Unavailable, ErrorCode.Unavailable)]
    public void Deadline_and_cancellation_are_not_folded_into_Unavailable(StatusCode status, ErrorCode expected) =>
        Assert.Equal(expected, status.ToErrorCode());
}
