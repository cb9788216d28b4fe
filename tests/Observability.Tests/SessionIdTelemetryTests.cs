using System.Diagnostics;
using System.Text;
using Headwise.Client;
using Headwise.Contracts;

namespace Headwise.Observability.Tests;

/// <summary>
/// A decode session's id is a bearer token: none of the spans a session's calls make (the gateway's, Orleans' call
/// spans, headwise.decode, errors included), in memory or sent over OTLP, carries it; they name the session's digest.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class SessionIdTelemetryTests(ThreeSiloCluster cluster)
{
    private static readonly AttentionSpec Spec = new() { ModelDim = 64, HeadCount = 4 };

    [Fact]
    public async Task No_span_of_a_decode_session_carries_its_id()
    {
        await cluster.CreateModel("session-spans", Spec);
        // Silo 2 exports over OTLP; its gateway coordinates the session's calls.
        await using var client = new GrpcAttentionClient(cluster.GrpcAddress(2));
        var session = await client.OpenSessionAsync("session-spans");
        var step = await client.DecodeAsync(session.Id, new FloatTensor(new float[2 * Spec.ModelDim], 1, 2, Spec.ModelDim));
        await Assert.ThrowsAsync<HeadwiseException>(() => client.DecodeAsync(session.Id, new FloatTensor(new float[2 * Spec.ModelDim], 2, 1, Spec.ModelDim)));
        await client.CloseSessionAsync(session.Id);
        await Assert.ThrowsAsync<HeadwiseException>(() => client.CloseSessionAsync(session.Id));

        string digest = SessionIds.GrainKey(session.Id);
        var traceId = ActivityTraceId.CreateFromString(step.TraceId);
        var spans = await cluster.Spans.WaitFor(all => all.Any(s => s.TraceId == traceId && s.OperationName == "headwise.decode"), "the decode span");
        // The Orleans call spans to the session's grain name it, so the digest is there to be found where the id was.
        Assert.Contains(spans, s => Texts(s).Any(t => t.Contains(digest)));
        Assert.All(spans, s => Assert.DoesNotContain(Texts(s), t => t.Contains(session.Id)));

        await cluster.Otlp.WaitForPost("/v1/traces", Convert.FromHexString(step.TraceId), "headwise.decode"u8.ToArray(), Encoding.ASCII.GetBytes(digest));
        byte[] id = Encoding.ASCII.GetBytes(session.Id);
        Assert.All(cluster.Otlp.Posts("/v1/traces"), body => Assert.True(body.AsSpan().IndexOf(id) < 0, "an OTLP trace export carries the session id"));
    }

    /// <summary>Every string a span exports: name, status description, tag values, events and their tags.</summary>
    private static IEnumerable<string> Texts(Activity span) =>
        new[] { span.DisplayName, span.OperationName, span.StatusDescription ?? "" }
            .Concat(span.TagObjects.Select(t => $"{t.Key}={t.Value}"))
            .Concat(span.Events.SelectMany(e => e.Tags.Select(t => $"{t.Key}={t.Value}").Append(e.Name)));
}
