"""Online Tier-0 edge inference: an auxiliary linear regression trained alongside a GSNN.

Longer than the package's ~450-line guide on purpose: one module class whose training
protocol (pre_forward -> arm_retained_grads -> aux_step), standardisation, closed-form
step and checkpoints share one state; its scoring lives in metrics.py / significance.py.

For every pair of adjacent ResBlocks ``(p, p + 1)`` and every source aggregator ``k``,
activation magnitudes of the function nodes at block ``p`` predict the gradient
magnitudes at block ``p + 1`` through ONE shared weight matrix ``W`` of shape
``(N, N)``::

    y_hat[b, j] = sum_i x_std[p, k, b, i] * W[i, j]        (target: y_std[p + 1, b, j])

so that ``W[i, j]`` scores the candidate edge ``i -> j``. The regression reuses the
training forward/backward of the GSNN (no extra pass over the data); its features are
detached, so nothing flows back into the model.

Data path of one training step::

    pre_forward()            enable activation capture on every ResBlock
    yhat = model(x)          blocks store their (pre-norm) activations
    arm_retained_grads()     ask autograd to keep the gradients of those activations
    loss.backward()
    aux_step()               segment_magnitude (one call for the K source aggregators of
                             all P source layers, one for the targets) -> (P, K, B, N)
                             float64 magnitudes -> standardise -> one (P*K*B, N) design
                             -> one matmul for the residual, one for W's gradient (closed
                             form, no autograd graph), one for the gram -> AdamW step on W
                             -> captured activations released

Scoring (``evaluate_against``, called every epoch for early stopping) works on the
(N, N) score matrix directly -- one sort for the ROC-AUC, one column comparison per
positive for the ranks -- instead of building and scanning an N^2-row frame.

Differences from the pure-torch ``gsnn.optim.MagnitudeEdgeRegressor`` (all documented
on the class): ``regressor.parameters()`` is ``W`` only (the pure-torch notebook prints
``W`` + the GSNN's parameters because its model was registered as a submodule); the
standardisation epsilon is relative to the feature's scale by default; one dropout mask
of ``W`` is drawn per step (shared by the ``P * K`` terms) instead of one per term;
the gram and the residual sum are accumulated in float64 without host syncs; the best
checkpoint also keeps the optimiser state.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ..ops import segment_magnitude
from .capture import capture_attr, channel_ptr, drop_captured, function_node_ids, stack_layers
from .edges import adjacency, function_edges
from .frame import pair_frame
from .metrics import evaluate_target_ranking as _evaluate_target_ranking
from .metrics import matrix_recovery, positive_pairs
from .significance import coefficient_pvalues

__all__ = ["MagnitudeEdgeRegressor"]

#: Source aggregators over a node's activation channels v -> op mode of segment_magnitude.
AGGREGATORS: dict[str, str] = {"sum": "sum", "max": "max", "mean": "mean", "l2": "l2"}
SCORE_MODES = ("abs", "relu", "signed")
EPS_MODES = ("relative", "absolute")


def _check_float(value: Any, name: str, lo: float, hi: float, lo_open: bool = False) -> float:
    """``float(value)`` if it is finite and lies in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and (v > lo if lo_open else v >= lo) and v <= hi):
        left = "(" if lo_open else "["
        raise ValueError(f"{name} must be a finite number in {left}{lo}, {hi}], got {value!r}")
    return v


class MagnitudeEdgeRegressor(nn.Module):
    """Online auxiliary linear regressor for function -> function edge inference.

    Learns one shared weight matrix ``W`` (N x N) while the GSNN trains: magnitudes of the
    function nodes' activations at block ``p`` (aggregated over each node's channels by
    each of the ``K`` ``aggregators``) predict the summed absolute gradients at block
    ``p + 1``, for all ``P = L - 1`` adjacent block pairs at once. ``score_matrix()``
    turns ``W`` into edge scores; ``evaluate`` / ``evaluate_against`` rank them.

    Args:
        model: the GSNN being trained, or any model honouring the capture contract
            (``ResBlocks`` with ``_store_activations`` / ``_last_pre_norm_activation`` /
            ``_last_activation`` / ``channel_groups``, ``input_node_mask``,
            ``output_node_mask``, ``checkpoint``, ``norm``). It must have
            ``checkpoint=False`` and at least two blocks. It is NOT registered as a
            submodule: ``parameters()`` is ``[W]``, and ``.to()`` / ``.train()`` /
            ``state_dict()`` of the regressor leave the model alone.
        data: graph container with ``node_names_dict['function']`` (N names) and
            ``edge_index_dict[('function', 'to', 'function')]`` (2, E).
        aggregators: source reductions of a node's channel vector v: ``'sum'`` =
            sum|v|, ``'max'`` = max|v|, ``'mean'`` = mean|v|, ``'l2'`` = sqrt(sum v^2).
            The target is always sum|grad|.
        use_pre_norm: use ``_last_pre_norm_activation`` (post ``lin_in``, pre norm;
            default) or ``_last_activation`` (then ``model.norm`` must be ``'batch'``,
            ``'groupbatch'`` or ``'none'``).
        standardize: z-score every feature and target per (pair, aggregator, node):
            batch statistics in training mode (running buffers updated), running buffers
            in eval mode.
        lr, weight_decay: AdamW hyper-parameters of ``W`` (its own optimiser, ``optim``).
        dropout: dropout probability applied to ``W`` in training mode. One mask per
            step, shared by the P*K terms (the pure-torch version draws one per term).
        ridge: extra L2 penalty ``ridge * sum(W^2)`` in the loss; also the ridge of the
            p-value gram.
        score_mode: ``'abs'`` (|W|), ``'relu'`` (max(W, 0)) or ``'signed'`` (W).
        ema_momentum: momentum of the running statistics, in (0, 1].
        eps: the standardisation epsilon, ``x_std = (x - mean) / sqrt(var + eps_x)``.
        eps_mode: ``'relative'`` (default): ``eps_x = eps * (var + mean^2)`` (``eps``
            times the feature's second moment, plus the smallest positive normal float64
            so that an all-zero feature gives 0, not NaN) -- invariant to the feature's
            scale, so gradient magnitudes of order 1e-6 (large N, mean-reduced loss) are
            standardised to unit variance instead of being flattened by the epsilon.
            ``'absolute'``: ``eps_x = eps`` as in the pure-torch version (exact
            reproduction).

    Parameters and buffers (state_dict keys as in the pure-torch version):
        ``W`` [N, N] (xavier-uniform, gain 0.1); ``running_mean_x`` [P, K, N] zeros,
        ``running_var_x`` ones, ``running_mean_y`` [P, N] zeros, ``running_var_y`` ones
        (float32); ``n_batches_tracked`` (int64, += 1 per term and training step);
        ``gram`` [N, N] (float64: sum of x_std^T x_std over terms and steps),
        ``n_samples`` (int64, += B per term), ``residual_sum_sq`` (float64).

    Training protocol (clear RuntimeErrors when out of order)::

        regressor.pre_forward(); yhat = model(x); loss = crit(yhat, y)
        regressor.arm_retained_grads(); loss.backward(); regressor.aux_step()

    Determinism: the magnitudes come from the bit-reproducible ``segment_magnitude``
    op; the rest is dense torch arithmetic, deterministic on the CPU and under
    ``torch.use_deterministic_algorithms(True)`` on CUDA, given the same RNG state
    (the dropout mask draws from the global generator of W's device).
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        *,
        aggregators: Sequence[str] = ("sum", "max"),
        use_pre_norm: bool = True,
        standardize: bool = True,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        dropout: float = 0.0,
        ridge: float = 0.0,
        score_mode: str = "abs",
        ema_momentum: float = 0.1,
        eps: float = 1e-8,
        eps_mode: str = "relative",
    ) -> None:
        super().__init__()
        # -- arguments ------------------------------------------------------------------
        if isinstance(aggregators, str):
            aggregators = (aggregators,)
        aggregators = tuple(aggregators)
        if not aggregators:
            raise ValueError(f"aggregators must name at least one of {tuple(AGGREGATORS)}")
        for agg in aggregators:
            if agg not in AGGREGATORS:
                raise ValueError(
                    f"aggregators: unknown aggregator {agg!r}; options are {tuple(AGGREGATORS)}"
                )
        if score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
        if eps_mode not in EPS_MODES:
            raise ValueError(f"eps_mode must be one of {EPS_MODES}, got {eps_mode!r}")
        lr = _check_float(lr, "lr", 0.0, math.inf, lo_open=True)
        weight_decay = _check_float(weight_decay, "weight_decay", 0.0, math.inf)
        dropout_p = _check_float(dropout, "dropout", 0.0, 1.0)
        if dropout_p >= 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        ridge = _check_float(ridge, "ridge", 0.0, math.inf)
        ema_momentum = _check_float(ema_momentum, "ema_momentum", 0.0, 1.0, lo_open=True)
        eps = _check_float(eps, "eps", 0.0, math.inf)

        # -- model contract -------------------------------------------------------------
        if getattr(model, "checkpoint", False):
            raise ValueError(
                "model: MagnitudeEdgeRegressor requires model.checkpoint=False (gradient "
                "checkpointing recomputes the activations during backward)"
            )
        blocks = getattr(model, "ResBlocks", None)
        if blocks is None:
            raise ValueError("model: has no ResBlocks (not a GSNN-like model)")
        if len(blocks) < 2:
            raise ValueError(
                f"model: has {len(blocks)} ResBlock(s); the regression maps block p to "
                "block p + 1, so it needs two or more"
            )
        if not use_pre_norm:
            norm = getattr(model, "norm", None)
            if norm not in ("batch", "groupbatch", "none"):
                raise ValueError(
                    "use_pre_norm=False requires model.norm in ('batch', 'groupbatch', "
                    f"'none'), not {norm!r}: other norms wash out the per-sample scale of the "
                    "post-norm activations; keep the default use_pre_norm=True"
                )

        # The model is deliberately kept outside ``_modules``: not a submodule.
        self.__dict__["model"] = model
        self.data = data
        self.aggregators = aggregators
        self.use_pre_norm = bool(use_pre_norm)
        self.standardize = bool(standardize)
        self.ridge = ridge
        self.score_mode = score_mode
        self.ema_momentum = ema_momentum
        self.eps = eps
        self.eps_mode = eps_mode
        self.dropout = nn.Dropout(dropout_p)

        self.function_nodes = list(data.node_names_dict["function"])
        self.N = N = len(self.function_nodes)
        self.L = len(blocks)
        self.n_pairs = P = self.L - 1
        self.n_aggs = K = len(self.aggregators)
        self._name_to_idx = {name: i for i, name in enumerate(self.function_nodes)}

        function_homo = function_node_ids(model)
        if function_homo.numel() != N:
            raise ValueError(
                f"data has {N} function nodes but the model's homogeneous graph has "
                f"{function_homo.numel()}"
            )
        self.function_homo_idxs = function_homo.tolist()
        ptr, perm = channel_ptr(blocks[0].channel_groups, function_homo, self.function_nodes)
        # Non-persistent: they follow .to(device) but stay out of the state_dict.
        self.register_buffer("_ptr", ptr, persistent=False)
        self.register_buffer("_perm", perm, persistent=False)

        self._edges = function_edges(data, N)
        self.edges = {(self.function_nodes[i], self.function_nodes[j]) for i, j in self._edges.T}

        # -- parameters, optimiser, buffers ---------------------------------------------
        self.W = nn.Parameter(torch.empty(N, N))
        nn.init.xavier_uniform_(self.W, gain=0.1)
        self.optim = torch.optim.AdamW([self.W], lr=lr, weight_decay=weight_decay)

        f64, i64 = torch.float64, torch.long
        buffers = {  # state_dict names and initial values (see the class docstring)
            "running_mean_x": torch.zeros(P, K, N),
            "running_var_x": torch.ones(P, K, N),
            "running_mean_y": torch.zeros(P, N),
            "running_var_y": torch.ones(P, N),
            "n_batches_tracked": torch.tensor(0, dtype=i64),
            "gram": torch.zeros(N, N, dtype=f64),
            "n_samples": torch.tensor(0, dtype=i64),
            "residual_sum_sq": torch.tensor(0.0, dtype=f64),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value)

        self._act_attr = capture_attr(use_pre_norm)
        self._stage = "idle"  # idle -> pre_forward -> armed
        self._acts: list[torch.Tensor] | None = None
        self._prev_store: list[bool] | None = None
        self._best_state: dict[str, Any] | None = None
        self._best_metric: float | None = None

    # ------------------------------------------------------------------ training protocol
    @property
    def best_metric(self) -> float | None:
        """The metric of the saved best checkpoint (None before the first save)."""
        return self._best_metric

    def _blocks(self) -> Sequence[nn.Module]:
        return self.model.ResBlocks

    def _release(self) -> None:
        """Drop every captured activation and restore the blocks' capture flags."""
        blocks = self._blocks()
        prev = self._prev_store or [False] * len(blocks)
        drop_captured(blocks)
        for mod, flag in zip(blocks, prev):
            mod._store_activations = flag
        self._acts = None
        self._prev_store = None
        self._stage = "idle"

    def pre_forward(self) -> None:
        """Enable activation capture on every ResBlock; call right before ``model(x)``.

        Drops anything captured earlier, so the next forward's activations are the ones
        ``arm_retained_grads`` picks up.
        """
        if self._stage != "idle":
            self._release()
        blocks = self._blocks()
        self._prev_store = [bool(getattr(m, "_store_activations", False)) for m in blocks]
        drop_captured(blocks)
        for mod in blocks:
            mod._store_activations = True
        self._stage = "pre_forward"

    def arm_retained_grads(self) -> None:
        """Keep the gradients of the captured activations; call after ``model(x)`` and
        before ``loss.backward()``.

        Raises:
            RuntimeError: ``pre_forward()`` was not called, ``model(x)`` did not run after
                it, or the forward ran without autograd (``torch.no_grad`` /
                ``inference_mode``).
        """
        if self._stage == "idle":
            raise RuntimeError(
                "arm_retained_grads() called without pre_forward(); the order is "
                "pre_forward() -> model(x) -> arm_retained_grads() -> loss.backward() -> "
                "aux_step()"
            )
        if self._stage == "armed":
            raise RuntimeError(
                "arm_retained_grads() called twice; run loss.backward() and aux_step() "
                "(or pre_forward() to start a new step)"
            )
        acts = []
        for li, mod in enumerate(self._blocks()):
            act = getattr(mod, self._act_attr, None)
            if act is None:
                self._release()
                raise RuntimeError(
                    f"ResBlocks[{li}].{self._act_attr} is missing: run model(x) between "
                    "pre_forward() and arm_retained_grads()"
                )
            if not act.requires_grad:
                self._release()
                raise RuntimeError(
                    f"ResBlocks[{li}].{self._act_attr} does not require grad: the forward "
                    "ran under torch.no_grad()/inference_mode(); aux_step() needs its "
                    "gradients"
                )
            acts.append(act)
        # Only the targets' gradients (blocks 1..L-1) are read.
        for act in acts[1:]:
            act.retain_grad()
        self._acts = acts
        self._stage = "armed"

    def _stacked(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """(L', B, C') |captures| (detached copy), channels grouped by node.

        Every aggregator depends on |v| only, so the absolute value is taken here, in
        place on the fresh copy: the magnitudes are bit-identical, and the CPU kernel's
        per-element sign branch becomes predictable (about 1.8x faster on random signs).
        """
        x = stack_layers(tensors)
        if not x.is_floating_point():
            x = x.float()
        if self._perm is not None:
            x = x.index_select(2, self._perm.to(x.device))
        return x.abs_()

    def _magnitudes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Sources (P, K, B, N) and targets (P, B, N), float64, on W's device."""
        acts = self._acts
        assert acts is not None
        grads = []
        for li, act in enumerate(acts[1:], start=1):
            if act.grad is None:
                raise RuntimeError(
                    f"the gradient of ResBlocks[{li}].{self._act_attr} is missing: run "
                    "loss.backward() between arm_retained_grads() and aux_step() (and make "
                    "the loss depend on every block)"
                )
            grads.append(act.grad)
        xs = self._stacked(acts[:-1])
        gs = self._stacked(grads)
        ptr = self._ptr.to(xs.device)
        modes = [AGGREGATORS[a] for a in self.aggregators]
        X = segment_magnitude(xs, ptr, modes).transpose(0, 1)  # (P, K, B, N)
        Y = segment_magnitude(gs, ptr, ["sum"])[0]  # (P, B, N)
        dev = self.W.device
        return X.to(dev), Y.to(dev)

    def _eps(self, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor | float:
        if self.eps_mode == "absolute":
            return self.eps
        return self.eps * (var + mean * mean) + torch.finfo(torch.float64).tiny

    def _standardise(self, X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z-score X (P, K, B, N) and Y (P, B, N) per (pair, aggregator, node).

        Training mode: batch mean / population variance, running buffers updated with
        ``running += m * (batch - running)`` (the targets' buffers once per aggregator,
        i.e. with momentum ``1 - (1 - m)^K``, as the pure-torch per-term loop does) and
        ``n_batches_tracked += P * K``. Eval mode: the running buffers.
        """
        if not self.standardize:
            return X, Y
        if self.training:
            # Two-pass moments (mean, then mean of centred squares): as accurate as
            # torch.var_mean and ~4x faster on these small float64 tensors.
            mx = X.mean(dim=2, keepdim=True)
            dx = X - mx
            vx = (dx * dx).mean(dim=2, keepdim=True)
            my = Y.mean(dim=1, keepdim=True)
            dy = Y - my
            vy = (dy * dy).mean(dim=1, keepdim=True)
            with torch.no_grad():
                m = self.ema_momentum
                m_y = 1.0 - (1.0 - m) ** self.n_aggs
                dt = self.running_mean_x.dtype
                self.running_mean_x.lerp_(mx.squeeze(2).to(dt), m)
                self.running_var_x.lerp_(vx.squeeze(2).to(dt), m)
                self.running_mean_y.lerp_(my.squeeze(1).to(dt), m_y)
                self.running_var_y.lerp_(vy.squeeze(1).to(dt), m_y)
                self.n_batches_tracked += self.n_pairs * self.n_aggs
        else:
            mx = self.running_mean_x.to(torch.float64).unsqueeze(2)
            vx = self.running_var_x.to(torch.float64).unsqueeze(2)
            my = self.running_mean_y.to(torch.float64).unsqueeze(1)
            vy = self.running_var_y.to(torch.float64).unsqueeze(1)
            dx = X - mx
            dy = Y - my
        Xs = dx / torch.sqrt(vx + self._eps(mx, vx))
        Ys = dy / torch.sqrt(vy + self._eps(my, vy))
        return Xs, Ys

    def aux_step(self, *, sync: bool = True) -> dict[str, float | torch.Tensor]:
        """One AdamW step of ``W`` on this batch; call after ``loss.backward()``.

        All ``P * K`` terms are stacked into one ``(P*K*B, N)`` design ``X`` with targets
        ``Y`` (the target of pair p repeated for each aggregator)::

            loss = sum_terms mean((X_t @ dropout(W) - Y_t)^2) + ridge * sum(W^2)
                 = sum((X @ dropout(W) - Y)^2) / (B * N) + ridge * sum(W^2)

        ``dropout(W)`` is ``W * s`` with one mask ``s`` per step (0 or 1/(1-p), drawn like
        ``nn.Dropout`` from the global RNG of W's device; training mode only). W's
        gradient is computed in closed form, ``2 s * X^T (X dropout(W) - Y) / (B N) +
        2 ridge W``, and AdamW steps. Then ``gram += X^T X`` (float64),
        ``n_samples += P*K*B``, ``residual_sum_sq += sum((y_hat - Y)^2)``. The captured
        activations are released whatever happens; nothing reaches the model's ``.grad``.

        Args:
            sync: return Python floats (one host sync). ``False`` returns 0-dim tensors
                on W's device instead, so a CUDA training loop never waits for the device.

        Returns:
            ``{'aux_loss': loss / n_terms, 'n_terms': P * K}``.

        Raises:
            RuntimeError: ``arm_retained_grads()`` was not called, or ``loss.backward()``
                did not run.
        """
        if self._stage != "armed":
            hint = "pre_forward() and " if self._stage == "idle" else ""
            if self._stage != "idle":
                self._release()
            raise RuntimeError(
                f"aux_step() called before {hint}arm_retained_grads(); the order is "
                "pre_forward() -> model(x) -> arm_retained_grads() -> loss.backward() -> "
                "aux_step()"
            )
        try:
            X, Y = self._magnitudes()
        finally:
            self._release()
        P, K, B, N = X.shape
        n_terms = P * K
        Xs, Ys = self._standardise(X, Y)
        design = Xs.reshape(P * K * B, N)  # float64, for the gram
        target = Ys.unsqueeze(1).expand(P, K, B, N).reshape(P * K * B, N)
        W = self.W
        with torch.no_grad():
            # Closed-form gradient (no autograd graph on W): with Wd = W * s, s the dropout
            # scale (0 or 1/(1-p), the mask nn.Dropout would draw), R = X Wd - Y,
            # loss = |R|^2 / (B N) + ridge |W|^2 and dloss/dW = s * 2 X^T R / (B N) + 2 ridge W.
            Xf = design.to(W.dtype)
            use_dropout = self.dropout.training and self.dropout.p > 0
            scale = self.dropout(torch.ones_like(W)) if use_dropout else None
            Wd = W * scale if scale is not None else W
            resid = torch.addmm(target.to(W.dtype), Xf, Wd, beta=-1)
            loss = resid.pow(2).sum() / (B * N)
            grad = torch.mm(Xf.T, resid).mul_(2.0 / (B * N))
            if scale is not None:
                grad.mul_(scale)
            if self.ridge > 0:
                loss = loss + self.ridge * W.pow(2).sum()
                grad.add_(W, alpha=2.0 * self.ridge)
            W.grad = grad
        self.optim.step()
        with torch.no_grad():
            self.gram.addmm_(design.T, design)
            self.n_samples += n_terms * B
            self.residual_sum_sq += resid.pow(2).sum(dtype=torch.float64)
            aux_loss = loss / n_terms
        if sync:
            return {"aux_loss": float(aux_loss.item()), "n_terms": float(n_terms)}
        return {"aux_loss": aux_loss, "n_terms": float(n_terms)}

    def reset_stats(self) -> None:
        """Zero the p-value accumulators (``gram``, ``n_samples``, ``residual_sum_sq``)."""
        self.gram.zero_()
        self.n_samples.zero_()
        self.residual_sum_sq.zero_()

    # ------------------------------------------------------------------------- scoring
    def score_matrix(self, *, as_tensor: bool = False) -> np.ndarray | torch.Tensor:
        """(N, N) edge scores from ``W`` (row = source, column = target).

        ``score_mode`` ``'abs'`` -> |W|, ``'relu'`` -> max(W, 0), ``'signed'`` -> W.
        Returns a float numpy array, or a detached tensor on W's device with
        ``as_tensor=True``.
        """
        w = self.W.detach()
        if self.score_mode == "abs":
            s = w.abs()
        elif self.score_mode == "relu":
            s = w.clamp_min(0.0)
        elif self.score_mode == "signed":
            s = w.clone()
        else:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {self.score_mode!r}")
        return s if as_tensor else s.cpu().numpy()

    def _adjacency(self) -> np.ndarray:
        return adjacency(self._edges, self.N)

    def coefficient_pvalues(self) -> np.ndarray:
        """(N, N) one-sided p-values of ``W[i, j] > 0`` from the streaming gram.

        All ones while ``n_samples < N + 2``. Else ``G = gram / n_samples + (ridge + 1e-8) I``,
        ``sigma2 = residual_sum_sq / max(n_samples * P * K * N - N, 1)``,
        ``se_i = sqrt(max(sigma2 * (G^-1)_ii, 1e-12))``, ``p = P(Z > W[i, j] / se_i)``.
        ``diag(G^-1)`` comes from a float64 Cholesky factor; a singular G gives all ones.
        """
        return coefficient_pvalues(
            self.W.detach(), self.gram.detach(), int(self.n_samples.item()),
            float(self.residual_sum_sq.item()), self.ridge, self.n_pairs * self.n_aggs,
        )  # fmt: skip

    def evaluate(self, *, exclude_self: bool = True) -> pd.DataFrame:
        """All candidate edges, best first.

        Returns:
            DataFrame with columns ``src_func, dst_func, src_idx, dst_idx, score, has_edge,
            p_value, q_value`` (one row per ordered pair, self pairs dropped when
            ``exclude_self``), sorted by score descending (NaN last), index reset;
            q-values are Benjamini-Hochberg over the rows.
        """
        return pair_frame(
            self.function_nodes,
            {"score": self.score_matrix(), "has_edge": self._adjacency()},
            self.coefficient_pvalues(),
            sort_by="score",
            exclude_self=exclude_self,
        )

    def evaluate_against(
        self,
        positive_edges: Iterable[tuple[Any, Any]],
        *,
        top_k: tuple[int, ...] = (1, 3, 5),
    ) -> dict[str, float]:
        """Recovery of known edges by the current scores (self pairs excluded).

        ``auc``: ROC-AUC (Mann-Whitney, ties count half, NaN scores dropped) of the
        positive pairs against the non-edges, i.e. the pairs that are neither positive nor
        a function->function edge of ``data``; NaN if either side is empty. Plus the
        within-target ranking summary of :meth:`evaluate_target_ranking` on
        :meth:`evaluate`'s frame (``n_positives``, ``mrr``, ``top@k`` for each k).

        Both are computed straight from the (N, N) score matrix, without building the
        N^2-row frame: the AUC by one sort of the negatives and a binary search of the
        positives in it, each positive's rank by comparing it with its target's column
        (O(N n_pos)). The results equal ``metrics.pair_auc`` and
        ``metrics.evaluate_target_ranking(self.evaluate(), ...)`` (ties in a column go to
        the lower source index, the frame's row order); about 0.1 s at N = 2,000.

        Raises:
            ValueError: empty ``positive_edges``, unknown node names, bad ``top_k``.
        """
        pos = positive_pairs(positive_edges, self._name_to_idx)
        top_k = tuple(top_k)
        for k in top_k:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"top_k must hold positive integers, got {top_k!r}")
        idx = self._name_to_idx
        pairs = np.asarray([(idx[s], idx[d]) for s, d in pos], dtype=np.int64).reshape(-1, 2)
        S = self.score_matrix()
        return matrix_recovery(S, pairs[:, 0], pairs[:, 1], self._adjacency(), top_k)

    @staticmethod
    def evaluate_target_ranking(
        res: pd.DataFrame, positive_edges: Iterable, score_col: str = "score", *args, **kwargs
    ) -> tuple[pd.DataFrame, dict[str, float]]:
        """:func:`gsnn_fast.inference.metrics.evaluate_target_ranking`, with the column
        of :meth:`evaluate`'s frame, ``'score'``, as the default ``score_col``."""
        return _evaluate_target_ranking(res, positive_edges, score_col, *args, **kwargs)

    # ---------------------------------------------------------------------- checkpoints
    def maybe_save_best(self, metric: float | torch.Tensor | None, mode: str = "max") -> bool:
        """Keep a deep copy of the state (W, buffers, optimiser state) if ``metric`` improves.

        Args:
            metric: the validation metric; None or NaN never improves.
            mode: ``'max'`` (higher is better) or ``'min'``.

        Returns:
            True if the state was saved.
        """
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if metric is None:
            return False
        try:
            value = float(metric.item() if torch.is_tensor(metric) else metric)
        except (TypeError, ValueError):
            raise ValueError(f"metric must be a number, got {metric!r}") from None
        if math.isnan(value):
            return False
        best = self._best_metric
        improved = best is None or (value > best if mode == "max" else value < best)
        if improved:
            self._best_metric = value
            self._best_state = {
                "state_dict": copy.deepcopy(self.state_dict()),
                "optim": copy.deepcopy(self.optim.state_dict()),
            }
        return improved

    def load_best(self) -> None:
        """Restore the state saved by the last improving :meth:`maybe_save_best`.

        Raises:
            RuntimeError: nothing was saved yet.
        """
        if self._best_state is None:
            raise RuntimeError(
                "load_best: nothing to restore yet; maybe_save_best(metric) keeps a state "
                "when the metric improves"
            )
        self.load_state_dict(copy.deepcopy(self._best_state["state_dict"]))
        self.optim.load_state_dict(copy.deepcopy(self._best_state["optim"]))

    def extra_repr(self) -> str:
        return (
            f"N={self.N}, pairs={self.n_pairs}, aggregators={self.aggregators}, "
            f"standardize={self.standardize}, eps_mode={self.eps_mode!r}, "
            f"ridge={self.ridge}, score_mode={self.score_mode!r}"
        )
