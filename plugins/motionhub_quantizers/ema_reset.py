"""Vector quantization with an EMA codebook and dead-code reset, the T2M-GPT VQ-VAE quantizer.

Training step on the flattened latents x (M, C), M = B * N:

1. first step only: codebook, code_sum <- the first K rows of x (tiled with N(0, (0.01 / sqrt(C))^2)
   noise when M < K); code_count <- 1
2. indices = argmin_k ||x - codebook_k||^2; the output uses the codebook *before* this step's update
3. code_sum <- mu * code_sum + (1 - mu) * sum of the x assigned to each code
   code_count <- mu * code_count + (1 - mu) * number of x assigned to each code
4. codebook_k <- code_sum_k / code_count_k where code_count_k >= 1, else row k of the candidates of 1.
   code_sum / code_count of a reset code are left as they are, so it is reset again every step
   until it has gathered an EMA count of 1.

Everything in 1-4 lives in persistent buffers, so a checkpoint resumes exactly. Under
``torch.distributed`` the per-step sums and counts are all-reduced and the candidate rows are
rank 0's, so every process keeps the same codebook and the update equals one on the global batch.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
import torch.distributed as dist
import torch.nn.functional as F

from motionhub.api import Bounds, Quantizer, QuantizerOutput, code_histogram, full_precision_forward


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class EMAResetVQ(Quantizer):
    """Vector quantizer with an EMA codebook and dead-code reset (T2M-GPT), resumable and in sync across processes.

    dim:           latent width C.
    codebook_size: K, the number of codes.
    decay:         EMA decay mu of the per-code sums and counts.

    The codebook is initialised from the first training batch; codes whose EMA count falls below 1
    are reset to vectors of the current batch. ``aux_loss`` is the commitment loss
    MSE(z, sg(quantized)); gradients pass straight through the quantisation.
    forward: (B, N, C) -> quantized (B, N, C), indices (B, N).
    """

    def __init__(self, dim: Annotated[int, Bounds(low=1)] = 512, codebook_size: Annotated[int, Bounds(low=2)] = 512,
                 decay: Annotated[float, Bounds(low=0, high=1, high_open=True)] = 0.99):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        if codebook_size < 2:
            raise ValueError(f"codebook_size must be at least 2, got {codebook_size}: one code carries no information "
                             f"(every token would be the same); use e.g. 512")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.dim, self.num_codes, self.decay = dim, codebook_size, decay
        self.register_buffer("codebook", torch.zeros(codebook_size, dim))
        self.register_buffer("code_sum", torch.zeros(codebook_size, dim))
        self.register_buffer("code_count", torch.zeros(codebook_size))
        self.register_buffer("initialised", torch.tensor(False))

    @property
    def codebook_size(self) -> int:
        return self.num_codes

    def reference_key_map(self) -> dict[str, str]:
        """Only the codebook is in a T2M-GPT checkpoint; the EMA sums and counts live outside it."""
        return {"codebook": "codebook"}

    def reference_derived_state(self, read: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The EMA state T2M-GPT keeps outside its checkpoint, as its initialisation sets it:
        ``code_sum = codebook`` and ``code_count = 1`` (every code counts as used once, and codes
        the next batches do not pick are reset, as right after the reference's initialisation);
        ``initialised`` unless the codebook is all zeros (the reference never trained it)."""
        codebook = read["codebook"]
        trained = bool(codebook.any())
        return {
            "code_sum": codebook.clone() if trained else torch.zeros_like(codebook),
            "code_count": torch.full(codebook.shape[:1], float(trained), dtype=codebook.dtype),
            "initialised": torch.tensor(trained),
        }

    @full_precision_forward("quantizer")  # the commitment loss and the output too, not only the distances
    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        flat = z.reshape(-1, self.dim)
        with torch.no_grad(), torch.autocast(z.device.type, enabled=False):
            x = flat.detach().float()
            if self.training and not self.initialised:
                self._initialise(x)
            indices = self._nearest(x)
            codes = F.embedding(indices, self.codebook).to(z.dtype)
            if self.training:
                self._update(x, indices)
        commit = F.mse_loss(flat, codes)
        quantized = flat + (codes - flat).detach()
        return QuantizerOutput(quantized.view_as(z), indices.view(z.shape[:-1]), commit)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, N) -> (B, N, C)."""
        return F.embedding(indices, self.codebook)

    def _nearest(self, x: torch.Tensor) -> torch.Tensor:
        return self._distances(x).argmin(1)

    def _distances(self, x: torch.Tensor) -> torch.Tensor:
        """(M, C) -> (M, K) squared distances to every code, ||x||^2 - 2 x.c + ||c||^2 (the reference's order)."""
        return x.pow(2).sum(1, keepdim=True) - 2 * x @ self.codebook.t() + self.codebook.pow(2).sum(1)[None]

    def _candidates(self, x: torch.Tensor) -> torch.Tensor:
        """(K, C) rows to initialise or reset codes from: x, tiled with small noise when too short."""
        if x.shape[0] < self.num_codes:
            x = x.repeat(math.ceil(self.num_codes / x.shape[0]), 1)
            x = x + torch.randn_like(x) * (0.01 / math.sqrt(self.dim))
        rows = x[: self.num_codes].clone()
        if _distributed():
            dist.broadcast(rows, src=0)
        return rows

    def _initialise(self, x: torch.Tensor) -> None:
        rows = self._candidates(x)
        self.codebook.copy_(rows)
        self.code_sum.copy_(rows)
        self.code_count.fill_(1.0)
        self.initialised.fill_(True)

    def _update(self, x: torch.Tensor, indices: torch.Tensor) -> None:
        counts = code_histogram(indices, self.num_codes).to(x.dtype)
        sums = torch.zeros_like(self.code_sum).index_add_(0, indices, x)
        if _distributed():
            stats = torch.cat([sums, counts[:, None]], dim=1)
            dist.all_reduce(stats)
            sums, counts = stats[:, :-1], stats[:, -1]
        self.code_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        self.code_count.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)

        live = self.code_count >= 1.0
        means = self.code_sum / self.code_count.clamp_min(torch.finfo(x.dtype).tiny)[:, None]
        if bool(live.all()):
            self.codebook.copy_(means)
        else:
            self.codebook.copy_(torch.where(live[:, None], means, self._candidates(x)))
