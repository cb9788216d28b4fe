using System.CommandLine;
using System.CommandLine.Parsing;
using Headwise.Contracts;

namespace Headwise.Cli;

/// <summary>Checks model names on the command line with the server's own rule, so a typo is a usage error.</summary>
internal static class ModelNameValidation
{
    public static Argument<string> ValidatedAsModelName(this Argument<string> argument)
    {
        argument.Validators.Add(result => Check(result.GetValueOrDefault<string>(), argument.Name, result));
        return argument;
    }

    public static Option<string> ValidatedAsModelName(this Option<string> option)
    {
        option.Validators.Add(result => Check(result.GetValueOrDefault<string>(), option.Name, result));
        return option;
    }

    private static void Check(string? name, string field, SymbolResult result)
    {
        try
        {
            ModelName.Validate(name, field);
        }
        catch (HeadwiseException exception)
        {
            result.AddError(exception.Message);
        }
    }
}
