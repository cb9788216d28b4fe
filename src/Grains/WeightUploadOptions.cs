namespace Headwise.Grains;

/// <summary>How long an upload may go without progress before the catalog aborts it (Headwise__UploadLeaseSeconds).</summary>
public sealed class WeightUploadOptions
{
    /// <summary>
    /// Seconds since the upload began or last staged a layer. An uploader that died (its silo killed, its client gone
    /// without a word) leaves its staged weights in storage until then; a live one renews the lease with every layer.
    /// </summary>
    public int UploadLeaseSeconds { get; set; } = 120;
}
