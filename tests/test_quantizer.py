"""EMA vector quantizer: eq. 3 by hand, straight-through, float32 under autocast, restarts, DDP identity."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from einops import rearrange

from vqvideo.models.quantizer import EMAVectorQuantizer


def as_latents(vectors: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (1, D, 1, 1, N): N positions of one clip."""
    return rearrange(vectors, "n d -> 1 d 1 1 n")


def two_code_quantizer(decay: float = 0.5, epsilon: float = 0.0) -> EMAVectorQuantizer:
    quantizer = EMAVectorQuantizer(num_codes=2, code_dim=2, decay=decay, epsilon=epsilon, data_init=False)
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    quantizer.ema_code_sum.copy_(quantizer.codebook)
    quantizer.ema_cluster_size.fill_(1.0)
    return quantizer


def test_ema_update_matches_hand_computation():
    quantizer = two_code_quantizer(decay=0.5, epsilon=0.0).train()
    vectors = torch.tensor([[1.0, 1.0], [2.0, 0.0], [9.0, 11.0]])
    output = quantizer(as_latents(vectors))
    assert output.codes.flatten().tolist() == [0, 0, 1]
    # N = 0.5*1 + 0.5*[2, 1] = [1.5, 1.0];  m = 0.5*[[0,0],[10,10]] + 0.5*[[3,1],[9,11]]
    assert torch.allclose(quantizer.ema_cluster_size, torch.tensor([1.5, 1.0]))
    assert torch.allclose(quantizer.ema_code_sum, torch.tensor([[1.5, 0.5], [9.5, 10.5]]))
    assert torch.allclose(quantizer.codebook, torch.tensor([[1.0, 1.0 / 3.0], [9.5, 10.5]]))
    # commitment against the codes chosen (before the update): ((1+1+4+0+1+1) / 6)
    assert torch.isclose(output.commitment_loss, torch.tensor(8.0 / 6.0))
    assert torch.isclose(output.perplexity, torch.exp(-(2 / 3 * torch.log(torch.tensor(2 / 3)) + 1 / 3 * torch.log(torch.tensor(1 / 3)))))


def test_laplace_smoothing_keeps_unused_codes_finite():
    quantizer = EMAVectorQuantizer(num_codes=4, code_dim=2, decay=0.0, epsilon=1e-5, data_init=False).train()
    quantizer(as_latents(torch.zeros(5, 2)))  # every vector to one code: three codes get N = 0
    assert torch.isfinite(quantizer.codebook).all()


def test_eval_does_not_update_and_straight_through_gradient():
    quantizer = two_code_quantizer().eval()
    before = quantizer.codebook.clone()
    quantizer(as_latents(torch.tensor([[1.0, 1.0]])))
    assert torch.equal(quantizer.codebook, before)
    latents = as_latents(torch.tensor([[1.0, 1.0], [9.0, 11.0]])).requires_grad_(True)
    quantizer.train()(latents).quantized.sum().backward()
    assert torch.equal(latents.grad, torch.ones_like(latents))


def test_float32_under_bf16_autocast():
    torch.manual_seed(0)
    quantizer = EMAVectorQuantizer(num_codes=16, code_dim=8, data_init=False).train()
    latents = torch.randn(2, 8, 2, 3, 3)
    expected = quantizer.nearest_codes(latents)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = quantizer(latents)
    assert torch.equal(output.codes, expected)
    assert quantizer.codebook.dtype == torch.float32 and output.commitment_loss.dtype == torch.float32


def test_init_flag_is_a_buffer_so_resume_does_not_reinitialise():
    torch.manual_seed(0)
    trained = EMAVectorQuantizer(num_codes=8, code_dim=4, data_init=True).train()
    trained(torch.randn(1, 4, 2, 4, 4))
    assert "initialized" in trained.state_dict() and bool(trained.initialized)
    resumed = EMAVectorQuantizer(num_codes=8, code_dim=4, data_init=True)
    resumed.load_state_dict(trained.state_dict())
    resumed.eval()(torch.randn(1, 4, 2, 4, 4) + 100.0)  # eval: no init, no update
    assert torch.equal(resumed.codebook, trained.codebook)
    resumed.train()(torch.randn(1, 4, 2, 4, 4) * 0 + 100.0)
    # an EMA step moves codes a bit towards 100; a re-initialisation would put every code at ~100
    assert resumed.codebook.abs().max() < 60


def test_dead_codes_restart_after_patience_and_are_counted():
    torch.manual_seed(0)
    quantizer = EMAVectorQuantizer(num_codes=4, code_dim=2, data_init=False, restart_dead_codes=True,
                                   dead_code_patience=3).train()
    quantizer.codebook.copy_(torch.tensor([[0.0, 0.0], [50.0, 50.0], [60.0, 60.0], [70.0, 70.0]]))
    quantizer.ema_code_sum.copy_(quantizer.codebook)
    vectors = as_latents(torch.randn(32, 2))  # all near code 0: codes 1..3 are dead
    restarts = [int(quantizer(vectors).restarts) for _ in range(3)]
    assert restarts == [0, 0, 3]
    assert int(quantizer.total_restarts) == 3
    assert quantizer.codebook[1:].abs().max() < 10  # moved onto encoder outputs
    assert int(quantizer(vectors).restarts) == 0  # restarted codes get a fresh patience window


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, result_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(rank)  # different data, different random restart picks per rank
    quantizer = EMAVectorQuantizer(num_codes=16, code_dim=4, decay=0.9, data_init=True, restart_dead_codes=True,
                                   dead_code_patience=2).train()
    for _ in range(6):
        quantizer(torch.randn(2, 4, 2, 3, 3) + 3.0 * rank)
    gathered = [torch.zeros_like(quantizer.codebook) for _ in range(world_size)]
    dist.all_gather(gathered, quantizer.codebook)
    if rank == 0:
        torch.save({"codebooks": gathered, "restarts": int(quantizer.total_restarts)}, result_path)
    dist.destroy_process_group()


@pytest.mark.ddp
def test_ddp_ranks_hold_identical_codebooks(tmp_path):
    result_path = str(tmp_path / "codebooks.pt")
    # fork: children reuse the imported torch instead of re-importing it (spawn costs ~10 s per process)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), result_path), nprocs=2, join=True, start_method="fork")
    result = torch.load(result_path)
    first, second = result["codebooks"]
    assert torch.equal(first, second)
    assert result["restarts"] > 0  # the restart path (rank-0 broadcast) was exercised
