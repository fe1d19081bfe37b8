"""Group-wise normalisation layers used inside :class:`~gsnn_fast.models.ResBlock`.

Every function node of a GSNN owns a group of hidden channels; ``channel_groups``
(LongTensor ``[C]``) maps each channel to its group (node) index. The layers below
normalise within those groups. Parameter and buffer names, shapes and defaults are
those of the pure-torch ``gsnn`` library so that its ``state_dict`` loads unchanged:

============================  ======================================================
class                         state (parameters + buffers)
============================  ======================================================
:class:`GroupLayerNorm`       ``gamma [G]``, ``beta [G]``, ``channel_groups [C]``,
                              ``n_channels [G]``
:class:`GroupBatchNorm`       ``gamma``/``beta [G]`` (if affine), ``channel_groups``,
                              ``running_mean [G]``, ``running_var [G]``,
                              ``num_batches_tracked []``
:class:`GroupRMSNorm`         ``gamma [G]`` (if affine), ``channel_groups``,
                              ``n_channels``
:class:`SoftmaxGroupNorm`     ``channel_groups``, ``n_channels``
:class:`GroupEMANorm`         as GroupBatchNorm
:class:`ChannelEMANorm`       ``gamma``/``beta [C]`` (if affine), ``running_mean [C]``,
                              ``running_var [C]``, ``num_batches_tracked``
============================  ======================================================

``G = channel_groups.max() + 1``. All layers accept ``(B, C)`` or ``(B, C, 1)`` inputs
of any floating dtype. Shapes returned follow the pure-torch library (documented per
class) because captured activations downstream depend on them.

Group reductions are vectorised: when the groups are contiguous and equally sized
(always the case inside a GSNN) they are computed on a ``(B, G, k)`` view, otherwise
with ``index_add``/``scatter_reduce``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


def _as_group_tensor(channel_groups: Sequence[int] | torch.Tensor) -> torch.Tensor:
    cg = torch.as_tensor(channel_groups, dtype=torch.long).detach().clone().reshape(-1)
    if cg.numel() == 0:
        raise ValueError("channel_groups must contain at least one channel")
    if int(cg.min()) < 0:
        raise ValueError("channel_groups must contain non-negative group indices")
    return cg.cpu()


class _Grouped(nn.Module):
    """Base class: holds ``channel_groups`` and vectorised group reductions.

    Subclasses call :meth:`_init_groups` in ``__init__``; it registers the
    ``channel_groups`` buffer (``[C]`` long) and records the layout.
    """

    def _init_groups(self, channel_groups: Sequence[int] | torch.Tensor) -> torch.Tensor:
        cg = _as_group_tensor(channel_groups)
        self.register_buffer("channel_groups", cg)
        self.num_groups = int(cg.max()) + 1
        self.num_channels = int(cg.numel())
        counts = torch.bincount(cg, minlength=self.num_groups)
        k = self.num_channels // self.num_groups
        # contiguous, equally sized groups -> reshape fast path
        self._uniform = bool(
            self.num_channels == k * self.num_groups
            and torch.equal(cg, torch.arange(self.num_groups).repeat_interleave(k))
        )
        self._k = k
        return counts

    def _init_counted(self, channel_groups: Sequence[int] | torch.Tensor, eps: float) -> None:
        """:meth:`_init_groups`, plus the ``n_channels`` buffer (channels per group) and
        ``eps``: the start of every per-sample group norm."""
        self.register_buffer("n_channels", self._init_groups(channel_groups))
        self.eps = eps

    # -- reductions over the channels of each group: (B, C) -> (B, G) -------------
    def _gsum(self, x: torch.Tensor) -> torch.Tensor:
        if self._uniform:
            return x.reshape(x.shape[0], self.num_groups, self._k).sum(-1)
        out = x.new_zeros(x.shape[0], self.num_groups)
        return out.index_add(1, self.channel_groups, x)

    def _gmax(self, x: torch.Tensor) -> torch.Tensor:
        if self._uniform:
            return x.reshape(x.shape[0], self.num_groups, self._k).amax(-1)
        idx = self.channel_groups.unsqueeze(0).expand_as(x)
        out = x.new_full((x.shape[0], self.num_groups), float("-inf"))
        return out.scatter_reduce(1, idx, x, reduce="amax", include_self=False)

    def _counts(self, like: torch.Tensor) -> torch.Tensor:
        return torch.bincount(self.channel_groups, minlength=self.num_groups).to(like.dtype)

    # -- broadcast group values back to channels: (..., G) -> (..., C) ------------
    def _expand(self, s: torch.Tensor) -> torch.Tensor:
        if self._uniform:
            return s.repeat_interleave(self._k, dim=-1)
        return s.index_select(-1, self.channel_groups)

    def _batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Population mean and variance per group over batch and channels: (G,), (G,)."""
        n = self._counts(x) * x.shape[0]
        mean = self._gsum(x).sum(0) / n
        var = self._gsum((x - self._expand(mean)) ** 2).sum(0) / n
        return mean, var


def _squeeze_last(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3 and x.size(-1) == 1:
        return x.squeeze(-1)
    if x.dim() != 2:
        raise ValueError(f"expected input of shape (B, C) or (B, C, 1), got {tuple(x.shape)}")
    return x


class _RunningStats:
    """Running (EMA) statistics and the optional affine map of a normalisation layer.

    A subclass provides ``_batch_stats(x) -> (mean, var)`` (population statistics of
    each slot: a group or a channel) and ``_expand(s)`` (slot values -> channels), and
    calls :meth:`_init_running` in ``__init__``.
    """

    def _init_running(
        self, size: int, eps: float, momentum: float, affine: bool, track_running_stats: bool
    ) -> None:
        self.eps = eps
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        if affine:
            self.gamma = nn.Parameter(torch.ones(size))
            self.beta = nn.Parameter(torch.zeros(size))
        else:
            self.register_parameter("gamma", None)
            self.register_parameter("beta", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(size))
            self.register_buffer("running_var", torch.ones(size))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _update(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """``running = (1 - momentum) running + momentum batch``, without gradient."""
        with torch.no_grad():
            m = self.momentum
            self.num_batches_tracked += 1
            self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean.dtype))
            self.running_var.mul_(1 - m).add_(m * var.to(self.running_var.dtype))

    def _mean_var(self, x: torch.Tensor, ema_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The statistics to normalise ``x`` with, after updating the running ones in
        training. Without running statistics: the batch's. With them: in evaluation the
        running ones; in training the batch's (``ema_only=False``, batch norm) or the
        running ones just updated from the batch (``ema_only=True``)."""
        if self.track_running_stats and (ema_only or not self.training):
            if self.training:
                self._update(*self._batch_stats(x.detach()))
            return self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        mean, var = self._batch_stats(x)
        if self.training and self.track_running_stats:
            self._update(mean.detach(), var.detach())
        return mean, var

    def _normalise(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / sqrt(var + eps)``, then ``* gamma + beta`` when affine."""
        out = (x - self._expand(mean)) / torch.sqrt(self._expand(var) + self.eps)
        if self.gamma is not None and self.beta is not None:
            out = out * self._expand(self.gamma) + self._expand(self.beta)
        return out


class GroupLayerNorm(_Grouped):
    """Layer normalisation within each channel group.

    ``y = (x - mean_g) / (std_g + eps) * gamma_g + beta_g`` where ``mean_g`` and the
    unbiased ``std_g`` are taken over the group's channels of each sample and are
    DETACHED (no gradient flows through the statistics), as in the pure-torch
    library. A group of a single channel has ``std = 0`` here (the pure-torch
    version divides by ``n - 1 = 0`` and returns NaN).

    Args:
        channel_groups: ``[C]`` channel -> group index.
        eps: added to the standard deviation (default ``0.1``).
        affine: learn per-group ``gamma`` (ones) and ``beta`` (zeros).

    Shapes: input ``(B, C)`` or ``(B, C, 1)``; output ``(B, C, 1)``.
    """

    def __init__(
        self, channel_groups: Sequence[int] | torch.Tensor, eps: float = 1e-1, affine: bool = True
    ) -> None:
        super().__init__()
        self._init_counted(channel_groups, eps)
        if affine:
            self.gamma = nn.Parameter(torch.ones(self.num_groups))
            self.beta = nn.Parameter(torch.zeros(self.num_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _squeeze_last(x)
        n = self._counts(x)
        with torch.no_grad():
            mean = self._gsum(x) / n
            ss = self._gsum((x - self._expand(mean)) ** 2)
            std = (ss / (n - 1).clamp_min(1)).sqrt()
        out = (x - self._expand(mean)) / (self._expand(std) + self.eps)
        if hasattr(self, "gamma"):
            out = out * self._expand(self.gamma) + self._expand(self.beta)
        return out.unsqueeze(-1)


class GroupBatchNorm(_RunningStats, _Grouped):
    """Batch normalisation with statistics pooled per channel group.

    Training (or ``track_running_stats=False``): mean and population variance of each
    group over the batch and the group's channels; running statistics are updated as
    ``running = (1 - momentum) * running + momentum * batch`` (without gradient).
    Evaluation: the running statistics. ``y = (x - mean) / sqrt(var + eps)``, then
    per-group ``gamma``/``beta`` if ``affine``.

    Args:
        channel_groups: ``[C]`` channel -> group index.
        eps: default ``1e-5``. momentum: default ``0.1``.
        affine: learn per-group ``gamma``/``beta``; None (default) takes the class's
            ``affine_default``, ``False`` here as in the pure-torch library
            (:class:`ResBlock` passes its own ``affine`` flag, ``True`` by default).
        track_running_stats: default ``True``.

    Shapes: input ``(B, C)`` or ``(B, C, 1)``; output ``(B, C, 1)``.
    """

    affine_default = False

    def __init__(
        self,
        channel_groups: Sequence[int] | torch.Tensor,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool | None = None,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self._init_groups(channel_groups)
        affine = self.affine_default if affine is None else affine
        self._init_running(self.num_groups, eps, momentum, affine, track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _squeeze_last(x)
        mean, var = self._mean_var(x, ema_only=False)
        return self._normalise(x, mean, var).unsqueeze(-1)


class GroupRMSNorm(_Grouped):
    """RMS normalisation within each channel group (no centring).

    ``y = x / sqrt(mean_g(x^2) + eps) * gamma_g`` per sample and group; gradients flow
    through the RMS.

    Args:
        channel_groups: ``[C]`` channel -> group index.
        eps: default ``1e-6``. affine: learn per-group ``gamma`` (default ``True``).

    Shapes: input ``(B, C)`` -> ``(B, C)``; ``(B, C, 1)`` -> ``(B, C, 1)``.
    """

    def __init__(
        self, channel_groups: Sequence[int] | torch.Tensor, eps: float = 1e-6, affine: bool = True
    ) -> None:
        super().__init__()
        self._init_counted(channel_groups, eps)
        if affine:
            self.gamma = nn.Parameter(torch.ones(self.num_groups))
        else:
            self.register_parameter("gamma", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        was3 = x.dim() == 3
        x = _squeeze_last(x)
        rms = torch.sqrt(self._gsum(x * x) / self._counts(x) + self.eps)
        out = x / self._expand(rms)
        if self.gamma is not None:
            out = out * self._expand(self.gamma)
        return out.unsqueeze(-1) if was3 else out


class SoftmaxGroupNorm(_Grouped):
    """Softmax within each channel group.

    ``y_c = exp(x_c - max_g) / (sum_{c' in g} exp(x_c' - max_g) + eps)``; the group
    maximum is not detached (as in the pure-torch library).

    Args:
        channel_groups: ``[C]`` channel -> group index. eps: default ``1e-8``.

    Shapes: input ``(B, C)`` or ``(B, C, 1)``; output ``(B, C, 1)``.
    """

    def __init__(self, channel_groups: Sequence[int] | torch.Tensor, eps: float = 1e-8) -> None:
        super().__init__()
        self._init_counted(channel_groups, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _squeeze_last(x)
        e = torch.exp(x - self._expand(self._gmax(x)))
        out = e / (self._expand(self._gsum(e)) + self.eps)
        return out.unsqueeze(-1)


class GroupEMANorm(GroupBatchNorm):
    """Group normalisation with exponential-moving-average statistics only.

    In training the running statistics are first updated from the batch (group mean
    and population variance, no gradient) and the input is then ALWAYS normalised
    with the running statistics (also in training), ``(x - rm) / sqrt(rv + eps)``,
    followed by per-group ``gamma``/``beta``. With ``track_running_stats=False`` the
    batch statistics are used instead.

    Args: as :class:`GroupBatchNorm`, but ``affine`` defaults to ``True``.

    Shapes: input ``(B, C)`` -> ``(B, C)``; ``(B, C, 1)`` -> ``(B, C, 1)``.
    """

    affine_default = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        was3 = x.dim() == 3
        x = _squeeze_last(x)
        out = self._normalise(x, *self._mean_var(x, ema_only=True))
        return out.unsqueeze(-1) if was3 else out


class ChannelEMANorm(_RunningStats, nn.Module):
    """Per-channel normalisation with exponential-moving-average statistics only.

    Like :class:`GroupEMANorm` with one group per channel: in training the running
    mean / population variance of each channel are updated from the batch first, then
    ``(x - rm) / sqrt(rv + eps) * gamma + beta`` is applied (always running stats).

    Args:
        num_channels: C. eps: ``1e-5``. momentum: ``0.1``. affine: ``True``.
        track_running_stats: ``True`` (``False``: batch statistics).

    Shapes: input ``(B, C)`` -> ``(B, C)``; ``(B, C, 1)`` -> ``(B, C, 1)``.
    """

    def __init__(
        self,
        num_channels: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_channels = int(num_channels)
        self._init_running(self.num_channels, eps, momentum, affine, track_running_stats)

    def _batch_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.mean(0), x.var(0, unbiased=False)

    def _expand(self, s: torch.Tensor) -> torch.Tensor:
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        was3 = x.dim() == 3
        x = _squeeze_last(x)
        if x.shape[1] != self.num_channels:
            raise ValueError(
                f"ChannelEMANorm expected {self.num_channels} channels, got {x.shape[1]}"
            )
        out = self._normalise(x, *self._mean_var(x, ema_only=True))
        return out.unsqueeze(-1) if was3 else out
