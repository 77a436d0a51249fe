"""Cuboid self-attention (Earthformer), with global vectors, on ``scaled_dot_product_attention``.

Parameter and buffer names match the official ``CuboidSelfAttentionLayer`` so official
checkpoints load with ``strict=True``. The computation is the official one, rearranged:

* the projections are per token, so they run *before* padding, shifting and cutting into
  cuboids (on fewer tokens, and without a copy of the input);
* q, k and v are cut into cuboids by one einops ``rearrange`` straight into the layout
  that ``scaled_dot_product_attention`` wants;
* all-true masks are never built; the bias and mask are one additive tensor;
* with separate global projections the local->global scores use a different query than the
  local->local ones. Both share one softmax, so the two queries are concatenated along the
  head dimension and each key set is padded with zeros on the other half: one SDPA call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from ._validation import ConfigError, int_triple, one_of, strategy_triple
from .attention import (
    additive_mask,
    attention,
    cuboid_attention,
    gather_bias,
    pad_mask_keys,
    small_attention_applies,
)
from .cuboid import (
    adjust_cuboid_and_shift,
    cut_qkv_padded,
    cut_stacked,
    pad_amounts,
    pad_thw,
    relative_position_index,
    reorder_pattern,
    self_attention_mask,
    unpad_thw,
)
from .layers import PADDINGS, linear_dropout, make_dropout, make_norm
from .fast_linear import linear as fast_linear
from .lean import lean_path_ok, norm_linear, row_slices


#: Tokens per slab of the CPU-inference self-attention (a 6 MiB qkv block at 64 channels).
ATTENTION_SLAB_TOKENS = 8192


def _zero_pad_last(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    return torch.nn.functional.pad(t, (before, after))


class CuboidSelfAttentionLayer(nn.Module):
    """Self-attention inside cuboids of a "b t h w c" tensor, optionally with global vectors.

    Parameters
    ----------
    dim, num_heads
        Channels and heads (``dim`` divisible by ``num_heads``).
    cuboid_size, shift_size, strategy
        Cuboid extent (T, H, W), Swin-style cyclic shift, and per-axis ``'l'`` local /
        ``'d'`` dilated decomposition. Extents longer than the data shrink at run time.
    padding_type
        ``'ignore'`` (pad with zeros and mask), ``'zeros'`` (pad, no mask: the padded tokens
        take part in the softmax, as in every released config) or ``'nearest'`` (resize).
    use_global_vector, use_global_self_attn, separate_global_qkv, global_dim_ratio
        Global vectors: tokens also attend to them, they attend to every token (and to each
        other with ``use_global_self_attn``), through the shared ``global_qkv`` or the six
        separate projections.

    Returns the update (no residual); the caller adds it. The input is LayerNorm-ed first.

    Examples
    --------
    >>> layer = CuboidSelfAttentionLayer(16, 4, cuboid_size=(2, 4, 4), shift_size=(1, 2, 2),
    ...                                  strategy=("l", "l", "l"), padding_type="zeros")
    >>> layer(torch.randn(2, 5, 8, 10, 16)).shape
    torch.Size([2, 5, 8, 10, 16])
    """

    def __init__(self, dim: int, num_heads: int, cuboid_size: Sequence[int] = (2, 7, 7),
                 shift_size: Sequence[int] = (0, 0, 0), strategy: Sequence[str] = ("l", "l", "l"),
                 padding_type: str = "ignore", qkv_bias: bool = False, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, use_final_proj: bool = True,
                 norm_layer: str = "layer_norm", use_global_vector: bool = False,
                 use_global_self_attn: bool = False, separate_global_qkv: bool = False,
                 global_dim_ratio: int = 1, checkpoint_level: int | bool = 0,
                 use_relative_pos: bool = True, **init_modes: str) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if global_dim_ratio != 1 and not separate_global_qkv:
            raise ConfigError("global_dim_ratio != 1 requires separate_global_qkv=True")
        self.dim, self.num_heads = dim, num_heads
        self.cuboid_size = int_triple(tuple(cuboid_size), "cuboid_size")
        self.shift_size = int_triple(tuple(shift_size), "shift_size", allow_zero=True)
        self.strategy = strategy_triple(tuple(strategy))
        self.padding_type = one_of(padding_type, "padding_type", PADDINGS)
        self.use_final_proj = use_final_proj
        self.use_relative_pos = use_relative_pos
        self.use_global_vector = use_global_vector
        self.use_global_self_attn = use_global_self_attn
        self.separate_global_qkv = separate_global_qkv
        self.global_dim_ratio = global_dim_ratio
        self.attn_drop_p = attn_drop
        head_dim = dim // num_heads
        self.scale = qk_scale or head_dim ** -0.5

        if use_relative_pos:
            bt, bh, bw = self.cuboid_size
            self.relative_position_bias_table = nn.Parameter(
                torch.zeros((2 * bt - 1) * (2 * bh - 1) * (2 * bw - 1), num_heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(self.cuboid_size))
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        global_dim = global_dim_ratio * dim
        if use_global_vector:
            if separate_global_qkv:
                self.l2g_q_net = nn.Linear(dim, dim, bias=qkv_bias)
                self.l2g_global_kv_net = nn.Linear(global_dim, 2 * dim, bias=qkv_bias)
                self.g2l_global_q_net = nn.Linear(global_dim, dim, bias=qkv_bias)
                self.g2l_k_net = nn.Linear(dim, dim, bias=qkv_bias)
                self.g2l_v_net = nn.Linear(dim, global_dim, bias=qkv_bias)
                if use_global_self_attn:
                    self.g2g_global_qkv_net = nn.Linear(global_dim, 3 * global_dim, bias=qkv_bias)
            else:
                self.global_qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        if use_final_proj:
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = make_dropout(proj_drop)
            if use_global_vector:
                self.global_proj = nn.Linear(global_dim, global_dim)
        self.norm = make_norm(norm_layer, dim)
        if use_global_vector:
            self.global_vec_norm = make_norm(norm_layer, global_dim)

    # -- projections -------------------------------------------------------------------
    def _local_projection(self) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
        """One weight for every per-token projection (qkv, then the separate global ones)."""
        weights = [self.qkv.weight]
        biases = [self.qkv.bias]
        if self.use_global_vector and self.separate_global_qkv:
            for lin in (self.l2g_q_net, self.g2l_k_net, self.g2l_v_net):
                weights.append(lin.weight)
                biases.append(lin.bias)
        sizes = [w.shape[0] for w in weights]
        weight = weights[0] if len(weights) == 1 else torch.cat(weights)
        bias = None if biases[0] is None else (biases[0] if len(biases) == 1 else torch.cat(biases))
        return weight, bias, sizes

    def forward(self, x: torch.Tensor, global_vectors: torch.Tensor | None = None):
        """x: "b t h w c"; global_vectors: "b g (r c)". Returns the update(s).

        In CPU inference over many tokens, without global vectors, the layer runs over slabs
        of whole cuboids (:meth:`_inference_slabs`): cuboids are independent, so the result
        is the same, while the projections, the cut copies and the attention temporaries of
        a slab are a few MiB that the allocator reuses instead of fresh tensors of the
        whole grid's size (on machines where page faults are dear, filling fresh memory
        cost as much as the matrix products).
        """
        slabs = self._inference_slabs(x, global_vectors)
        if not slabs:
            return self._forward(x, global_vectors)
        axis, step = slabs
        out = x.new_empty(*x.shape[:-1], self.dim)
        index = [slice(None)] * 5
        for slab in row_slices(x.shape[axis], step):
            index[axis] = slab
            out[tuple(index)] = self._forward(x[tuple(index)])
        return out

    def _inference_slabs(self, x: torch.Tensor, global_vectors: torch.Tensor | None) -> tuple[int, int] | None:
        """(axis of x, slab length) to run CPU inference by slabs, or None to run it whole.

        A slab is a run of whole cuboids along one axis that is local (``'l'``), not shifted
        and not padded: its cuboids, their bias and their mask are those of the whole grid.
        Slabs hold about :data:`ATTENTION_SLAB_TOKENS` tokens.
        """
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.qkv.weight.requires_grad)
        tokens = x.numel() // max(1, x.shape[-1])
        if (x.device.type != "cpu" or self.training or needs_grad or self.use_global_vector
                or global_vectors is not None or x.dim() != 5 or tokens <= 2 * ATTENTION_SLAB_TOKENS):
            return None
        thw = tuple(x.shape[1:4])
        cuboid, shift = adjust_cuboid_and_shift(thw, self.cuboid_size, self.shift_size, self.strategy)
        pads = pad_amounts(thw, cuboid)
        best = None
        for i in range(3):
            if self.strategy[i] != "l" or shift[i] or pads[i] or cuboid[i] >= thw[i]:
                continue
            slab_tokens = tokens // (thw[i] // cuboid[i])  # tokens of one cuboid-thick slab
            step = cuboid[i] * max(1, ATTENTION_SLAB_TOKENS // slab_tokens)
            if step < thw[i] and (best is None or slab_tokens < best[2]):
                best = (i + 1, step, slab_tokens)
        return None if best is None else best[:2]

    def _forward(self, x: torch.Tensor, global_vectors: torch.Tensor | None = None):
        weight, bias, sizes = self._local_projection()
        fuse_norm = bias is None and lean_path_ok(self.norm, x.device.type)
        x_raw = x
        if not fuse_norm:
            x = self.norm(x)
        b, t, h, w, c = x.shape
        if c != self.dim:
            raise ConfigError(f"expected {self.dim} channels, got {c}")
        if self.use_global_vector:
            if global_vectors is None:
                raise ConfigError("this layer uses global vectors: call it as layer(x, global_vectors)")
            global_vectors = self.global_vec_norm(global_vectors)
        cuboid, shift = adjust_cuboid_and_shift((t, h, w), self.cuboid_size, self.shift_size, self.strategy)
        pads = pad_amounts((t, h, w), cuboid)
        padded = (t + pads[0], h + pads[1], w + pads[2])
        shifted = any(s > 0 for s in shift)

        if self._zero_tail_case(pads, shift, bias):
            proj = norm_linear(x_raw, self.norm, weight) if fuse_norm else fast_linear(x, weight)
            return self._attend_zero_tail(proj, cuboid)
        if fuse_norm:  # training: LayerNorm + projection without keeping the normalised copy
            proj = pad_thw(norm_linear(x_raw, self.norm, weight), pads, self.padding_type)
        elif bias is None:  # per-token, bias-free: project first, then pad (zeros stay zeros)
            proj = pad_thw(fast_linear(x, weight), pads, self.padding_type)
        else:
            proj = fast_linear(pad_thw(x, pads, self.padding_type), weight, bias)
        if shifted:
            proj = torch.roll(proj, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
        # one part (no separate global projections): no split, whose backward would copy
        parts = (proj,) if len(sizes) == 1 else proj.split(sizes, dim=-1)
        bt, bh, bw = cuboid
        cut = reorder_pattern(self.strategy, True)
        volume = bt * bh * bw
        rel_bias = (gather_bias(self.relative_position_bias_table, self.relative_position_index, volume, volume)
                    if self.use_relative_pos else None)
        mask = self_attention_mask((t, h, w), cuboid, shift, self.strategy, self.padding_type)
        dropout_p = self.attn_drop_p if self.training else 0.0

        new_global = None
        if not self.use_global_vector and small_attention_applies(proj, volume):
            out = self._attend_small(parts[0], cut, cuboid, additive_mask(rel_bias, mask, proj.dtype, proj.device),
                                     batch=b)
        else:
            q, k, v = cut_stacked(parts[0], cut, k=3, heads=self.num_heads, bt=bt, bh=bh, bw=bw)
            if self.use_global_vector:
                out, new_global = self._attend_with_globals(
                    q, k, v, parts, global_vectors, cut, cuboid, shift, rel_bias, mask, pads, padded, dropout_p, b)
            else:
                attn_mask = additive_mask(rel_bias, mask, q.dtype, q.device)
                out = cuboid_attention(q, k, v, batch=b, attn_mask=attn_mask, scale=self.scale,
                                       dropout_p=dropout_p)

        out = rearrange(out[None], reorder_pattern(self.strategy, True, reverse=True), k=1, b=b,
                        bt=bt, bh=bh, bw=bw, nt=padded[0] // bt, nh=padded[1] // bh, nw=padded[2] // bw)
        if shifted:
            out = torch.roll(out, shifts=shift, dims=(1, 2, 3))
        out = unpad_thw(out, pads, self.padding_type)
        if self.use_final_proj:
            out = linear_dropout(out, self.proj, self.proj_drop)
            if new_global is not None:
                new_global = self.proj_drop(self.global_proj(new_global))
        if self.use_global_vector:
            return out, new_global
        return out

    def _attend_small(self, qkv: torch.Tensor, cut: str, cuboid, attn_mask: torch.Tensor | None, *, batch: int,
                      zero_keys: int = 0) -> torch.Tensor:
        """Inference with short cuboids: q, k, v cut, scaled and key-padded in one pass each.

        ``zero_keys`` keys with ``k = v = 0`` are appended to every cuboid; ``attn_mask``
        covers the cuboid's keys and those. The keys added beyond them (up to a multiple of 8,
        for :func:`~xearthformer.nn.attention.small_attention`) get a mask of ``-inf``.
        """
        bt, bh, bw = cuboid
        q, k, v = cut_qkv_padded(qkv, cut, q_scale=self.scale, zero_keys=zero_keys, heads=self.num_heads,
                                 bt=bt, bh=bh, bw=bw)
        keys = bt * bh * bw + zero_keys
        attn_mask = pad_mask_keys(attn_mask, keys, k.shape[-2], dtype=q.dtype, device=q.device)
        return cuboid_attention(q, k, v, batch=batch, attn_mask=attn_mask, scale=1.0)

    # -- zero padding in time only: attend without building the padded grid -------------
    def _zero_tail_case(self, pads, shift, bias) -> bool:
        """Zero-padded frames at the end of time, nothing else padded or shifted, no globals.

        Then a padded token's query, key and value are exactly zero (bias-free projection of
        zeros), so only the last cuboid along time sees padding, and there a padded key adds
        ``exp(bias)`` to the softmax denominator and nothing to the numerator. The official
        ENSO decoder is this case (14 frames padded to 24).
        """
        return (not self.use_global_vector and self.padding_type == "zeros" and bias is None
                and pads[0] > 0 and pads[1] == 0 and pads[2] == 0 and not any(shift)
                and self.strategy[0] == "l")

    def _attend_zero_tail(self, proj: torch.Tensor, cuboid) -> torch.Tensor:
        """The zero-padded computation, exactly, on the real frames only.

        Full cuboids along time attend as usual. In the last, partial cuboid (``r`` real
        frames) the padded keys are folded into one extra key with ``k = v = 0`` whose
        additive score is ``logsumexp`` of their biases: the same softmax, without the
        padded queries (their outputs are discarded) and without the padded copy.
        """
        b, t, h, w, _ = proj.shape
        bt, bh, bw = cuboid
        t_full = (t // bt) * bt
        real = (t - t_full) * bh * bw  # real tokens of a tail cuboid: the first ones (t slowest)
        volume = bt * bh * bw
        cut = reorder_pattern(self.strategy, True)
        glue = reorder_pattern(self.strategy, True, reverse=True)
        dropout_p = self.attn_drop_p if self.training else 0.0
        rel_bias = (gather_bias(self.relative_position_bias_table, self.relative_position_index, volume, volume)
                    if self.use_relative_pos else None)
        small = small_attention_applies(proj, volume + 1)
        # split and cat, not slices and slice assignment: under autograd their backwards are
        # views and one copy, where a slice's backward zero-fills a tensor of proj's size
        qkv = proj if proj.shape[-1] == 3 * self.dim else proj[..., :3 * self.dim]
        qkv_full, qkv_tail = qkv.split([t_full, t - t_full], dim=1)
        pieces = []
        if t_full:
            qkv = qkv_full
            attn_mask = additive_mask(rel_bias, None, proj.dtype, proj.device)
            if small:
                part = self._attend_small(qkv, cut, cuboid, attn_mask, batch=b)
            else:
                q, k, v = cut_stacked(qkv, cut, k=3, heads=self.num_heads, bt=bt, bh=bh, bw=bw)
                part = cuboid_attention(q, k, v, batch=b, attn_mask=attn_mask, scale=self.scale,
                                        dropout_p=dropout_p)
            pieces.append(rearrange(part[None], glue, k=1, b=b, bt=bt, bh=bh, bw=bw, nt=t_full // bt,
                                    nh=h // bh, nw=w // bw))
        r = t - t_full
        if rel_bias is None:
            heads_bias = proj.new_zeros(self.num_heads, real, real)
            folded = proj.new_full((self.num_heads, real, 1), math.log(volume - real))
        else:
            heads_bias = rel_bias[:, :real, :real].to(proj.dtype)
            folded = torch.logsumexp(rel_bias[:, :real, real:].to(proj.dtype), dim=-1, keepdim=True)
        tail_mask = torch.cat((heads_bias, folded), dim=-1)[None]
        qkv = qkv_tail
        if small:  # the folded padded key (k = v = 0) is one of the zero keys of the cut
            part = self._attend_small(qkv, cut, (r, bh, bw), tail_mask, batch=b, zero_keys=1)
        else:
            q, k, v = cut_stacked(qkv, cut, k=3, heads=self.num_heads, bt=r, bh=bh, bw=bw)
            k = torch.nn.functional.pad(k, (0, 0, 0, 1))  # the folded padded key: k = v = 0
            v = torch.nn.functional.pad(v, (0, 0, 0, 1))
            part = cuboid_attention(q, k, v, batch=b, attn_mask=tail_mask, scale=self.scale, dropout_p=dropout_p)
        pieces.append(rearrange(part[None], glue, k=1, b=b, bt=r, bh=bh, bw=bw, nt=1, nh=h // bh, nw=w // bw))
        out = torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]
        if self.use_final_proj:
            out = linear_dropout(out, self.proj, self.proj_drop)
        return out

    def _attend_with_globals(self, q, k, v, parts, g, cut, cuboid, shift, rel_bias, mask, pads, padded,
                             dropout_p, b):
        heads = self.num_heads
        d = self.dim // heads
        bt, bh, bw = cuboid
        n_glob = g.shape[1]
        num_cuboids = q.shape[0] // b
        if self.separate_global_qkv:
            (l2g_q,) = rearrange(parts[1], cut, k=1, heads=heads, bt=bt, bh=bh, bw=bw)
            g_k, g_v = rearrange(self.l2g_global_kv_net(g), "b g (k heads d) -> k b heads g d", k=2, heads=heads)
            g2l_q = rearrange(self.g2l_global_q_net(g), "b g (heads d) -> b heads g d", heads=heads)
            g2l_k = rearrange(parts[2], "b t h w (heads d) -> b heads (t h w) d", heads=heads)
            g2l_v = rearrange(parts[3], "b t h w (heads d) -> b heads (t h w) d", heads=heads)
            if self.use_global_self_attn:
                g2g_q, g2g_k, g2g_v = rearrange(self.g2g_global_qkv_net(g), "b g (k heads d) -> k b heads g d",
                                                k=3, heads=heads)
        else:
            q_g, k_g, v_g = rearrange(self.global_qkv(g), "b g (k heads d) -> k b heads g d", k=3, heads=heads)
            l2g_q, g_k, g_v = q, k_g, v_g
            g2l_q = q_g
            g2l_k = rearrange(k, "(b n) heads v d -> b heads (n v) d", b=b)
            g2l_v = rearrange(v, "(b n) heads v d -> b heads (n v) d", b=b)
            g2g_q, g2g_k, g2g_v = q_g, k_g, v_g

        # local -> (own cuboid + globals): one softmax over [cuboid keys, global keys]
        expand = lambda t: t.unsqueeze(1).expand(b, num_cuboids, *t.shape[1:]).flatten(0, 1)  # noqa: E731
        keys_g, values_g = expand(g_k), expand(g_v)
        if self.separate_global_qkv:
            query = torch.cat((q, l2g_q), dim=-1)
            keys = torch.cat((_zero_pad_last(k, 0, d), _zero_pad_last(keys_g, d, 0)), dim=2)
        else:
            query = q
            keys = torch.cat((k, keys_g), dim=2)
        values = torch.cat((v, values_g), dim=2)
        local_bias = None if rel_bias is None else torch.nn.functional.pad(rel_bias, (0, n_glob))
        local_mask = None if mask is None else torch.nn.functional.pad(mask, (0, n_glob), value=True)
        if local_bias is None and local_mask is None:
            attn_mask = None
        else:
            attn_mask = additive_mask(local_bias, local_mask, q.dtype, q.device)
        out = cuboid_attention(query, keys, values, batch=b, attn_mask=attn_mask, scale=self.scale,
                               dropout_p=dropout_p)

        # globals -> every token (+ globals). The keys are in cuboid order; the official code
        # builds the 'ignore' padding mask in grid order and applies it to them as is: reproduced.
        to_tokens = "(b n) heads v d -> b heads (n v) d"
        if self.separate_global_qkv:
            (g2l_k,) = rearrange(parts[2], cut, k=1, heads=heads, bt=bt, bh=bh, bw=bw)
            (g2l_v,) = rearrange(parts[3], cut, k=1, heads=heads, bt=bt, bh=bh, bw=bw)
            g2l_k = rearrange(g2l_k, to_tokens, b=b)
            g2l_v = rearrange(g2l_v, to_tokens, b=b)
        key_mask = None
        if self.padding_type == "ignore" and any(p > 0 for p in pads):
            valid = torch.zeros(padded, dtype=torch.bool, device=q.device)
            valid[: padded[0] - pads[0], : padded[1] - pads[1], : padded[2] - pads[2]] = True
            if any(s > 0 for s in shift):
                valid = torch.roll(valid, shifts=tuple(-s for s in shift), dims=(0, 1, 2))
            key_mask = valid.flatten()
        if self.use_global_self_attn:
            if self.separate_global_qkv:
                dq, dk = g2l_q.shape[-1], g2g_q.shape[-1]
                query_g = torch.cat((g2l_q, g2g_q), dim=-1)
                keys_all = torch.cat((_zero_pad_last(g2l_k, 0, dk), _zero_pad_last(g2g_k, dq, 0)), dim=2)
            else:
                query_g = g2l_q
                keys_all = torch.cat((g2l_k, g2g_k), dim=2)
            values_all = torch.cat((g2l_v, g2g_v), dim=2)
            if key_mask is not None:
                key_mask = torch.nn.functional.pad(key_mask, (0, n_glob), value=True)
        else:
            query_g, keys_all, values_all = g2l_q, g2l_k, g2l_v
        g_mask = None
        if key_mask is not None:
            g_mask = additive_mask(None, key_mask[None, None, :], q.dtype, q.device)
        new_global = attention(query_g, keys_all, values_all, attn_mask=g_mask, dropout_p=dropout_p,
                               scale=self.scale)
        new_global = rearrange(new_global, "b heads g e -> b g (heads e)")
        return out, new_global
