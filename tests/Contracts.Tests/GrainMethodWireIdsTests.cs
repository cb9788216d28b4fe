using System.Reflection;
using Orleans;
using Orleans.Serialization.Invocation;

namespace Headwise.Contracts.Tests;

/// <summary>
/// Orleans sends a grain call by a hash of its method's name and parameter types. A rolling update runs silos of two
/// releases side by side, so a method whose signature changes can no longer be called across them (the review of
/// GetProjection's added parameter found this). grain-method-ids.txt records every method's id: a change that alters
/// or drops one fails here; a new method must be recorded.
/// </summary>
public sealed class GrainMethodWireIdsTests
{
    private static string RecordPath => Path.Combine(AppContext.BaseDirectory, "grain-method-ids.txt");

    /// <summary>"IInterface.Method(ParamType, …) = ID" for each method the contracts' generated invokables carry.</summary>
    private static SortedSet<string> CurrentIds()
    {
        var ids = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in typeof(ILayerGrain).Assembly.GetTypes())
        {
            var alias = type.GetCustomAttribute<CompoundTypeAliasAttribute>();
            if (alias is null || alias.Components.Length != 4 || (alias.Components[0] as string) != "inv") continue;
            var method = ((IInvokable)Activator.CreateInstance(type)!).GetMethod();
            var parameters = string.Join(", ", method.GetParameters().Select(p => Name(p.ParameterType)));
            ids.Add($"{((Type)alias.Components[2]).Name}.{method.Name}({parameters}) = {alias.Components[3]}");
        }
        return ids;
    }

    private static string Name(Type type) => type.IsGenericType
        ? $"{type.Name[..type.Name.IndexOf('`')]}<{string.Join(", ", type.GetGenericArguments().Select(Name))}>"
        : type.Name;

    [Fact]
    public void The_record_lists_every_grain_interface()
    {
        var ids = CurrentIds();
        // A generator change that stopped emitting the aliases would leave nothing to compare.
        foreach (var grain in new[] { "ILayerGrain", "IHeadGrain", "IDecodeSessionGrain", "IForwardCoordinatorGrain", "IModelCatalogGrain", "ISiloRelayGrain", "ISessionIndexGrain" })
            Assert.Contains(ids, line => line.StartsWith(grain + ".", StringComparison.Ordinal));
    }

    [Fact]
    public void No_grain_method_changes_its_wire_id()
    {
        var recorded = File.ReadAllLines(RecordPath).Where(l => l.Length > 0 && !l.StartsWith('#')).ToHashSet(StringComparer.Ordinal);
        var current = CurrentIds();
        var lost = recorded.Except(current).ToList();
        var unrecorded = current.Except(recorded).ToList();
        Assert.True(lost.Count == 0,
            "Silos of the previous release call these methods and would no longer reach them; keep each signature and add a method " +
            "beside it instead:\n" + string.Join('\n', lost) + (unrecorded.Count > 0 ? "\nNew or changed:\n" + string.Join('\n', unrecorded) : ""));
        Assert.True(unrecorded.Count == 0,
            "New grain methods: add these lines to tests/Contracts.Tests/grain-method-ids.txt:\n" + string.Join('\n', unrecorded));
    }
}
