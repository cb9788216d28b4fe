#!/usr/bin/env python3
"""Headwise from Python, through the gRPC API alone (a client generated from headwise.proto, no SDK).

Creates a model from one of the repository's golden files (tests/golden/*.safetensors: weights, an input X and the
outputs libtorch computed in float64), uploads its weights, runs Forward with the causal mask and a decode session
token by token (unary Decode calls, then one DecodeStream), and, when /dev/shm exists, the same Forward with X and Y in a
shared-memory file (RegisterSharedMemory: a client on the silo's machine), and checks both against the file's expected output and against numpy's own attention (float64).
Prints one line per check ("FORWARD OK max|diff| 3.1e-08") and exits 0 only when all pass.

    python3 headwise_example.py --server 127.0.0.1:5070 [--golden ../../tests/golden/gpt2-tiny.safetensors] [--api-key KEY]

X is what a transformer block feeds its attention: the normalised hidden state (GPT-2's ln_1 output), shape
[batch, tokens, model_dim]. Headwise returns the attention block's output, before the residual add.
"""
import argparse
import json
import mmap
import os
import struct
import sys

import grpc
import numpy as np

import headwise_pb2 as pb
import headwise_pb2_grpc as rpc

# The golden README's bound for float32 against float64: max abs error <= 1e-4.
MAX_ABS = 1e-4
CHUNK = 1 << 20


def read_safetensors(path):
    """{name: array} and the metadata of a safetensors file (F32 and I32 tensors, as the golden files hold)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    body = data[8 + header_len:]
    meta = header.pop("__metadata__", {})
    kinds = {"F32": "<f4", "I32": "<i4"}
    tensors = {name: np.frombuffer(body[e["data_offsets"][0]:e["data_offsets"][1]], kinds[e["dtype"]]).reshape(e["shape"])
               for name, e in header.items()}
    return data, tensors, meta


def attention(x, wq, wk, wv, wo, bq, bk, bv, bo, heads, kv_heads, head_dim, causal=True):
    """y = concat_h(softmax(Q_h K_h^T / sqrt(dh) + mask) V_h) W_O + b_O for x: [T, D], in float64. W_* map x -> y as x @ W."""
    t = x.shape[0]
    q, k, v = x @ wq + bq, x @ wk + bk, x @ wv + bv
    mask = np.triu(np.full((t, t), -np.inf), 1) if causal else np.zeros((t, t))
    out = []
    for h in range(heads):
        g = h // (heads // kv_heads)  # GQA: consecutive query heads share a KV head
        qh, kh, vh = (m[:, i * head_dim:(i + 1) * head_dim] for m, i in ((q, h), (k, g), (v, g)))
        s = qh @ kh.T / np.sqrt(head_dim) + mask
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out.append((p / p.sum(axis=1, keepdims=True)) @ vh)
    return np.concatenate(out, axis=1) @ wo + bo


def layer_weights(tensors, meta, layer):
    """W_Q, W_K, W_V, W_O (as x @ W) and biases of one layer, float64, from either layout of the golden files."""
    d = int(meta["model_dim"])
    f64 = lambda a: np.asarray(a, dtype=np.float64)
    if meta["layout"] == "gpt2":  # Conv1D: c_attn [D, 3D] = [W_Q | W_K | W_V]
        p = meta["prefix"].replace("{layer}", str(layer))
        w, b = f64(tensors[p + "c_attn.weight"]), f64(tensors[p + "c_attn.bias"])
        return (w[:, :d], w[:, d:2 * d], w[:, 2 * d:], f64(tensors[p + "c_proj.weight"]),
                b[:d], b[d:2 * d], b[2 * d:], f64(tensors[p + "c_proj.bias"]))
    p = meta["prefix"].replace("{layer}", str(layer))  # torch Linear: y = x W^T + b
    get = lambda n, size: f64(tensors[p + n + ".bias"]) if meta["bias"] == "true" else np.zeros(size)
    ws = [f64(tensors[p + n + "_proj.weight"]).T for n in "qkvo"]
    return (*ws, *(get(n + "_proj", ws[i].shape[1]) for i, n in enumerate("qkvo")))


def tensor(a):
    a = np.ascontiguousarray(a, dtype="<f4")
    return pb.Tensor(shape=list(a.shape), dtype=pb.DTYPE_F32, data=a.tobytes())


def floats(t):
    return np.frombuffer(t.data, "<f4").reshape(list(t.shape))


def forward_shared_memory(stub, model, x, auth):
    """Forward with X written to a file in /dev/shm that the silo maps (registered under the file's name) and Y read back
    from the same file: the call carries only references. The silo must see the same /dev/shm (same machine or pod)."""
    x = np.ascontiguousarray(x, dtype="<f4")
    name = f"headwise-python-{os.getpid()}"
    path = os.path.join("/dev/shm", name)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, 2 * x.nbytes)
        with mmap.mmap(fd, 2 * x.nbytes) as region:
            region[:x.nbytes] = x.tobytes()
            stub.RegisterSharedMemory(pb.RegisterSharedMemoryRequest(name=name, key=name, byte_size=2 * x.nbytes), metadata=auth)
            try:
                reply = stub.Forward(pb.ForwardRequest(
                    model=model, layer=0, causal=True, input=pb.Tensor(shape=list(x.shape), dtype=pb.DTYPE_F32),
                    input_shm=pb.SharedMemoryRef(region=name, offset=0, byte_size=x.nbytes),
                    output_shm=pb.SharedMemoryRef(region=name, offset=x.nbytes, byte_size=x.nbytes)), metadata=auth)
                return np.frombuffer(region[x.nbytes:], "<f4").reshape(list(reply.output.shape))
            finally:
                stub.UnregisterSharedMemory(pb.UnregisterSharedMemoryRequest(name=name), metadata=auth)
    finally:
        os.close(fd)
        os.unlink(path)


def check(what, actual, expected):
    worst = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    ok = worst <= MAX_ABS
    print(f"{what} {'OK' if ok else 'FAILED'} max|diff| {worst:.1e}")
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:5070", help="the gateway's gRPC address, host:port (cleartext)")
    parser.add_argument("--golden", default=os.path.join(here, "..", "..", "tests", "golden", "gpt2-tiny.safetensors"))
    parser.add_argument("--api-key", default=os.environ.get("HEADWISE_API_KEY", ""), help="Headwise__ApiKey, if the cluster has one")
    parser.add_argument("--model", default=f"python-example-{os.getpid()}")
    args = parser.parse_args()

    data, tensors, meta = read_safetensors(args.golden)
    heads, kv_heads, head_dim = int(meta["head_count"]), int(meta["kv_head_count"]), int(meta["head_dim"])
    spec = pb.AttentionSpec(model_dim=int(meta["model_dim"]), head_count=heads, kv_head_count=kv_heads,
                            head_dim=head_dim, layer_count=int(meta["layers"]), bias=meta["bias"] == "true")
    auth = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []

    with grpc.insecure_channel(args.server, options=[("grpc.max_receive_message_length", 256 << 20)]) as channel:
        attention_rpc = rpc.AttentionStub(channel)
        attention_rpc.CreateModel(pb.CreateModelRequest(name=args.model, spec=spec), metadata=auth)
        try:
            layout = pb.WEIGHT_LAYOUT_GPT2 if meta["layout"] == "gpt2" else pb.WEIGHT_LAYOUT_LINEAR
            parts = [pb.UploadWeightsRequest(header=pb.UploadHeader(model=args.model, layout=layout, prefix=meta["prefix"]))]
            parts += [pb.UploadWeightsRequest(chunk=data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)]
            info = attention_rpc.UploadWeights(iter(parts), metadata=auth)
            print(f"model {info.name}: ready={info.ready}, {len(info.heads)} head groups on {len({h.silo for h in info.heads})} silo(s)")

            x = tensors["input"]  # [B, T, D]
            expected = tensors["expected.0.causal"].astype(np.float64)
            mine = np.stack([attention(s.astype(np.float64), *layer_weights(tensors, meta, 0), heads, kv_heads, head_dim) for s in x])
            ok = check("NUMPY vs golden", mine, expected)

            reply = attention_rpc.Forward(pb.ForwardRequest(model=args.model, layer=0, input=tensor(x), causal=True), metadata=auth)
            y = floats(reply.output)
            ok &= check("FORWARD vs golden", y, expected)
            ok &= check("FORWARD vs numpy", y, mine)
            if os.path.isdir("/dev/shm"):
                ok &= check("FORWARD SHM vs golden", forward_shared_memory(attention_rpc, args.model, x, auth), expected)

            # Decode: sequence 0 one token at a time; each step's output is row t of the causal forward pass.
            session = attention_rpc.OpenSession(pb.OpenSessionRequest(model=args.model, layer=0), metadata=auth).session
            rows = []
            for t in range(x.shape[1]):
                step = attention_rpc.Decode(pb.DecodeRequest(session=session, input=tensor(x[0:1, t:t + 1])), metadata=auth)
                rows.append(floats(step.output)[0, 0])
            attention_rpc.CloseSession(pb.CloseSessionRequest(session=session), metadata=auth)
            ok &= check("DECODE vs golden", np.stack(rows), expected[0])

            # The same steps over one DecodeStream: the first message names the session (here a ping, answered with
            # ping set), every message gets one answer, in order; no new call per step.
            session = attention_rpc.OpenSession(pb.OpenSessionRequest(model=args.model, layer=0), metadata=auth).session
            messages = [pb.DecodeStreamRequest(session=session, ping=True)]
            messages += [pb.DecodeStreamRequest(input=tensor(x[0:1, t:t + 1])) for t in range(x.shape[1])]
            answers = list(attention_rpc.DecodeStream(iter(messages), metadata=auth))
            attention_rpc.CloseSession(pb.CloseSessionRequest(session=session), metadata=auth)
            in_order = answers[0].ping and [a.position for a in answers[1:]] == list(range(1, x.shape[1] + 1))
            print(f"DECODE STREAM order {'OK' if in_order else 'WRONG'}: {len(answers)} answers")
            ok &= in_order and check("DECODE STREAM vs golden", np.stack([floats(a.output)[0, 0] for a in answers[1:]]), expected[0])
        finally:
            attention_rpc.DeleteModel(pb.DeleteModelRequest(name=args.model), metadata=auth)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
