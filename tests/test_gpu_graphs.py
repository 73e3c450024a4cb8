"""On a GPU: the steering ops capture into a CUDA graph and follow the strength buffer on replay, and a
patched model compiled with mode="reduce-overhead" (CUDA graphs) honours new strengths without a
re-capture. Skipped, with the reason shown, where no GPU is visible."""
import pytest
import torch

import steerkit
from steerkit import SteeringVectors, models
from steerkit.ops import gated_steer, steer_add_rmsnorm, steer_linear
from steerkit.ops.steer_linear import fold
from steerkit.vectors import Entry

from tiny_models import tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CUDA graph capture)")

IDS = torch.tensor([[1, 7, 12, 40, 3, 9], [1, 22, 5, 5, 61, 2]])


def _ops(x, res, th, w, b, s, nw, proj, folded):
    new_res, normed = steer_add_rmsnorm(x, res, th, w, b, s, True, nw, 1e-6, check_finite=False)
    return (new_res, normed, steer_linear(x, proj, None, th, w, b, s, True, folded=folded, check_finite=False),
            gated_steer(x, th, w, b, s, True, check_finite=False))


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_the_ops_replay_from_a_cuda_graph_with_new_strengths(backend, use_backend):
    use_backend(backend)
    g = torch.Generator(device="cuda").manual_seed(0)
    kw = dict(device="cuda", dtype=torch.bfloat16, generator=g)
    x, res = torch.randn(64, 512, **kw), torch.randn(64, 512, **kw)
    th, w = torch.randn(3, 512, **kw) * 0.5, torch.randn(3, 512, **kw) / 512**0.5
    b = torch.randn(3, device="cuda", generator=g)
    nw, proj = 1 + 0.1 * torch.randn(512, **kw), torch.randn(256, 512, **kw) / 512**0.5
    folded = fold(proj, th)
    s = torch.tensor([1.0, 0.5, -0.5], device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            _ops(x, res, th, w, b, s, nw, proj, folded)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _ops(x, res, th, w, b, s, nw, proj, folded)
    for new in ([0.0, 0.0, 0.0], [2.0, -1.0, 0.25]):
        s.copy_(torch.tensor(new))
        graph.replay()
        eager = _ops(x, res, th, w, b, s, nw, proj, folded)
        for got, want in zip(captured, eager):
            assert torch.equal(got, want)


def test_a_compiled_reduce_overhead_model_follows_new_strengths():
    torch._dynamo.reset()
    model = tiny_model("llama").cuda()
    layout = models.resolve(model)
    gen = torch.Generator().manual_seed(0)
    entries = {(site, 1): Entry(torch.randn(2, layout.site_size(site), generator=gen) * 0.5,
                                torch.randn(2, layout.site_size(site), generator=gen) / 6, torch.randn(2, generator=gen))
               for site in ("attn_heads", "attn_out", "mlp_out")}
    ids = IDS.cuda()
    with steerkit.steer(model, SteeringVectors(entries), strength=torch.tensor([1.0, 2.0])) as handle:
        assert {p for p, _ in handle.paths.values()} == {"fused", "folded"}
        compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
        with torch.no_grad():
            for new in ([1.0, 2.0], [0.0, 0.0], [-1.0, 3.0], [1.0, 2.0]):
                handle.set_strength(torch.tensor(new))
                for _ in range(3):  # the first calls record the graph; later ones replay it
                    torch.compiler.cudagraph_mark_step_begin()
                    got = compiled(ids).logits.clone()
                want = model(ids).logits
                assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), new
