namespace Headwise.Contracts;

/// <summary>The keys of Headwise's grains, written in one place so every caller spells them alike.</summary>
public static class GrainKeys
{
    public const string Catalog = "catalog";
    public static string Layer(string model, int layer) => $"{model}/{layer}";
    public static string Head(string model, int layer, int group) => $"{model}/{layer}/{group}";
    /// <summary>The relay of a silo is keyed by the silo's endpoint, as head reports name silos.</summary>
    public static string Relay(string siloEndpoint) => siloEndpoint;
}
