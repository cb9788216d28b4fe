# syntax=docker/dockerfile:1
# The Headwise silo image: `docker build -t headwise-silo:latest .` (from the repository root).
# The same binary as `dotnet run --project src/Silo`; deploy/k8s configures it for cluster mode with env vars.

# ---- build ----
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /build

# Restore from the project files alone, so this layer is rebuilt only when a package or reference changes.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/Kernels/Headwise.Kernels.csproj src/Kernels/
COPY src/Client/Headwise.Client.csproj src/Client/
COPY src/Contracts/Headwise.Contracts.csproj src/Contracts/
COPY src/Grains/Headwise.Grains.csproj src/Grains/
COPY src/Silo/Headwise.Silo.csproj src/Silo/
RUN dotnet restore src/Silo/Headwise.Silo.csproj

COPY src/Kernels/ src/Kernels/
COPY src/Client/ src/Client/
COPY src/Contracts/ src/Contracts/
COPY src/Grains/ src/Grains/
COPY src/Silo/ src/Silo/
RUN dotnet publish src/Silo/Headwise.Silo.csproj -c Release -o /app --no-restore

# ---- runtime ----
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./

# Inside a container the silo and its web ports listen on every interface; Kubernetes or `docker run -e`
# add clustering (Headwise__Clustering=Redis, Headwise__Redis=...) on top.
ENV Headwise__ListenAddress=0.0.0.0 \
    DOTNET_CLI_TELEMETRY_OPTOUT=1

# 11111 silo-to-silo, 30000 Orleans client gateway, 5070 gRPC (HTTP/2 cleartext), 5080 web (dashboard, /metrics, /healthz)
EXPOSE 11111 30000 5070 5080

# The image's non-root `app` user.
USER $APP_UID
ENTRYPOINT ["dotnet", "Headwise.Silo.dll"]
