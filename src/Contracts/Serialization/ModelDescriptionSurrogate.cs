namespace Headwise.Contracts.Serialization;

/// <summary><see cref="ModelDescription"/> as Orleans serializes it (the record lives in the Orleans-free Headwise.Client).</summary>
[GenerateSerializer, Immutable, Alias("headwise.model")]
public struct ModelDescriptionSurrogate
{
    [Id(0)] public string Name;
    [Id(1)] public AttentionSpec Spec;
    [Id(2)] public bool Ready;
    [Id(3)] public HeadLocation[] Heads;
}

/// <summary>Between <see cref="ModelDescription"/> and its Orleans wire shape.</summary>
[RegisterConverter]
public sealed class ModelDescriptionConverter : IConverter<ModelDescription, ModelDescriptionSurrogate>
{
    public ModelDescription ConvertFromSurrogate(in ModelDescriptionSurrogate surrogate) => new()
    {
        Name = surrogate.Name,
        Spec = surrogate.Spec,
        Ready = surrogate.Ready,
        Heads = surrogate.Heads ?? [],
    };

    public ModelDescriptionSurrogate ConvertToSurrogate(in ModelDescription value) => new()
    {
        Name = value.Name,
        Spec = value.Spec,
        Ready = value.Ready,
        Heads = value.Heads,
    };
}

/// <summary><see cref="HeadLocation"/> as Orleans serializes it.</summary>
[GenerateSerializer, Immutable, Alias("headwise.head-location")]
public struct HeadLocationSurrogate
{
    [Id(0)] public int Layer;
    [Id(1)] public int Group;
    [Id(2)] public string Silo;
}

/// <summary>Between <see cref="HeadLocation"/> and its Orleans wire shape.</summary>
[RegisterConverter]
public sealed class HeadLocationConverter : IConverter<HeadLocation, HeadLocationSurrogate>
{
    public HeadLocation ConvertFromSurrogate(in HeadLocationSurrogate surrogate) => new(surrogate.Layer, surrogate.Group, surrogate.Silo);

    public HeadLocationSurrogate ConvertToSurrogate(in HeadLocation value) => new() { Layer = value.Layer, Group = value.Group, Silo = value.Silo };
}
