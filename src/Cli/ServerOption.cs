using System.CommandLine;
using Headwise.Client;

namespace Headwise.Cli;

/// <summary>
/// The global <c>--server URL</c> option: the gRPC address of any silo. Default: the HEADWISE_SERVER environment
/// variable, else <see cref="GrpcAttentionClient.DefaultAddress"/>.
/// </summary>
public sealed class ServerOption
{
    public const string EnvironmentVariable = "HEADWISE_SERVER";

    public ServerOption()
    {
        Option = new Option<string>("--server")
        {
            Description = $"gRPC address of a Headwise silo (env {EnvironmentVariable})",
            HelpName = "URL",
            Recursive = true,
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } fromEnvironment
                ? fromEnvironment
                : GrpcAttentionClient.DefaultAddress.OriginalString,
        };
    }

    public Option<string> Option { get; }

    /// <summary>The global <c>--api-key KEY</c> option; default: the HEADWISE_API_KEY environment variable.</summary>
    public Option<string?> ApiKeyOption { get; } = new("--api-key")
    {
        Description = $"API key for a cluster that requires one (env {GrpcAttentionClientOptions.ApiKeyVariable})",
        HelpName = "KEY",
        Recursive = true,
    };

    /// <summary>The address the command line asks for, or a <see cref="UsageException"/> when it is not an http(s) URL.</summary>
    public Uri Address(ParseResult parseResult)
    {
        string text = parseResult.GetValue(Option) ?? GrpcAttentionClient.DefaultAddress.OriginalString;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var address) || (address.Scheme != Uri.UriSchemeHttp && address.Scheme != Uri.UriSchemeHttps))
            throw new UsageException($"--server is '{text}'; expected an http:// or https:// URL such as {GrpcAttentionClient.DefaultAddress.OriginalString}.");
        return address;
    }

    /// <summary>A gRPC client for <see cref="Address"/>; the caller disposes it.</summary>
    public IAttentionClient Connect(ParseResult parseResult)
    {
        var options = new GrpcAttentionClientOptions();
        if (parseResult.GetValue(ApiKeyOption) is { Length: > 0 } key) options.ApiKey = key;
        return new GrpcAttentionClient(Address(parseResult), options);
    }
}
