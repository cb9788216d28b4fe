namespace Headwise.Grains;

/// <summary>The grain storage provider every Headwise grain persists to; the silo decides what backs it.</summary>
public static class StorageNames
{
    public const string Weights = "headwise";
}
