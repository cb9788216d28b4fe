using Headwise.Silo;

try
{
    await HeadwiseSilo.Build(args).RunAsync();
}
catch (InvalidOperationException exception) when (exception.Message.StartsWith("Headwise configuration", StringComparison.Ordinal))
{
    Console.Error.WriteLine(exception.Message);
    return 2;
}
return 0;
