namespace Headwise.Contracts;

/// <summary>
/// The weights a model serves: the id of the upload that wrote them and the catalog's count of committed uploads
/// (<see cref="Generation"/> orders two commits, so a late message about an older one never moves a layer or head back).
/// </summary>
[GenerateSerializer, Immutable, Alias("headwise.weights-version")]
public sealed record WeightsVersion(
    [property: Id(0)] Guid Upload,
    [property: Id(1)] long Generation)
{
    /// <summary>No weights committed yet.</summary>
    public static readonly WeightsVersion None = new(Guid.Empty, 0);
}
