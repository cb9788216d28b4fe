using System.Reflection;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Headwise.Grains.Forward;
using Headwise.V1;
using Microsoft.AspNetCore.Routing;

namespace Headwise.Silo.Gateway;

/// <summary>
/// Binds the Attention service's methods to <see cref="AttentionGateway"/> as Grpc.AspNetCore's own provider does, from
/// the generated BindService, except that Forward's requests are parsed by <see cref="PooledForwardRequest"/>. The
/// generated binder takes each method's marshallers from static fields, with no way to give one method another, so this
/// provider stands in for the library's for this one service (<see cref="GatewayMethodBinding"/>).
/// </summary>
internal sealed class AttentionMethodProvider(TensorBuffers buffers) : IServiceMethodProvider<AttentionGateway>
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<AttentionGateway> context) =>
        Attention.BindService(new Binder(context, buffers), serviceImpl: null);

    private sealed class Binder(ServiceMethodProviderContext<AttentionGateway> context, TensorBuffers buffers) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
            context.AddUnaryMethod(WithPooledInput(method), Metadata(method.Name, out var handlerMethod),
                Invoker<UnaryServerMethod<AttentionGateway, TRequest, TResponse>>(handlerMethod));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddClientStreamingMethod(method, Metadata(method.Name, out var handlerMethod),
                Invoker<ClientStreamingServerMethod<AttentionGateway, TRequest, TResponse>>(handlerMethod));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddServerStreamingMethod(method, Metadata(method.Name, out var handlerMethod),
                Invoker<ServerStreamingServerMethod<AttentionGateway, TRequest, TResponse>>(handlerMethod));

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            context.AddDuplexStreamingMethod(method, Metadata(method.Name, out var handlerMethod),
                Invoker<DuplexStreamingServerMethod<AttentionGateway, TRequest, TResponse>>(handlerMethod));

        private Method<TRequest, TResponse> WithPooledInput<TRequest, TResponse>(Method<TRequest, TResponse> method)
            where TRequest : class where TResponse : class
        {
            if (method is not Method<ForwardRequest, ForwardResponse> forward) return method;
            var pooled = new Method<ForwardRequest, ForwardResponse>(forward.Type, forward.ServiceName, forward.Name,
                PooledForwardRequest.Marshaller(forward.RequestMarshaller, buffers), forward.ResponseMarshaller);
            return (Method<TRequest, TResponse>)(object)pooled;
        }

        // The gateway's override of the generated base method, its attributes, and the POST that gRPC routes by (with CORS
        // preflight accepted), as the library's binder gives them.
        private static List<object> Metadata(string name, out MethodInfo handlerMethod)
        {
            handlerMethod = typeof(AttentionGateway).GetMethod(name, BindingFlags.Public | BindingFlags.Instance)
                ?? throw new InvalidOperationException($"{nameof(AttentionGateway)} has no method {name} for the Attention service.");
            var metadata = new List<object>();
            metadata.AddRange(typeof(AttentionGateway).GetCustomAttributes(inherit: true));
            metadata.AddRange(handlerMethod.GetCustomAttributes(inherit: true));
            metadata.Add(new HttpMethodMetadata(["POST"], acceptCorsPreflight: true));
            return metadata;
        }

        private static TDelegate Invoker<TDelegate>(MethodInfo handlerMethod) where TDelegate : Delegate =>
            (TDelegate)Delegate.CreateDelegate(typeof(TDelegate), handlerMethod);
    }
}
