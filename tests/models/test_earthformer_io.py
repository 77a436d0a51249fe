"""The full-resolution encoders and decoders run over chunks of frames in CPU inference.

Chunked and whole runs are compared in float64 (where a wrong frame, a stale buffer or a
mixed-up layout would show far above rounding), with chunks of one and two frames and a
frame count that leaves a shorter last chunk. The golden models are also run with one
frame per chunk and checked against the official outputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import xearthformer.models.earthformer_io as io
from xearthformer.nn._validation import ConfigError
from xearthformer.nn.upsample_conv import channels_last_view, nearest_upsample_conv2d


def _stack_pair():
    torch.manual_seed(0)
    enc = io.InitialStackPatchMergingEncoder(2, 1, [4, 6], [3, 2], [2, 1]).double().eval()
    shapes = enc.get_out_shape_list((5, 12, 18, 1))
    targets, in_dim = io.FinalStackUpsamplingDecoder.get_init_params((5, 12, 18, 1), shapes, large_channel=True)
    dec = io.FinalStackUpsamplingDecoder(targets, in_dim, [1, 2]).double().eval()
    return enc, dec


def _conv_pair():
    torch.manual_seed(1)
    enc = io.InitialEncoder(2, 16, (1, 2, 2), num_conv_layers=2).double().eval()
    dec = io.FinalDecoder((5, 8, 10), 16, num_conv_layers=2).double().eval()
    return enc, dec


def _frame_chunk_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = io._in_frame_chunks
    monkeypatch.setattr(io, "_in_frame_chunks", lambda x, chunks, fn: calls.append(len(chunks)) or
                        original(x, chunks, fn))
    return calls


def _in_channels(enc) -> int:
    first = enc.conv_block_list[0] if hasattr(enc, "conv_block_list") else enc.conv_block
    return first[0].in_channels


@pytest.mark.parametrize("pair", [_stack_pair, _conv_pair])
@pytest.mark.parametrize("frames_per_chunk", [1, 3])  # 3: a shorter last chunk (10 frames)
def test_chunked_equals_whole(monkeypatch, pair, frames_per_chunk) -> None:
    enc, dec = pair()
    x = torch.randn(2, 5, 12 if pair is _stack_pair else 8, 18 if pair is _stack_pair else 10, _in_channels(enc),
                    dtype=torch.float64)
    with torch.no_grad():
        monkeypatch.setattr(io, "FRAME_CHUNK_BYTES", 1 << 40)  # one chunk: the whole batch at once
        whole_code = enc(x)
        whole = dec(whole_code)
        calls = _frame_chunk_calls(monkeypatch)
        # chunks of frames_per_chunk frames, whatever the per-frame size
        monkeypatch.setattr(io, "FRAME_CHUNK_BYTES", 0)
        monkeypatch.setattr(io, "row_slices", lambda n, step: [slice(i, min(n, i + frames_per_chunk))
                                                               for i in range(0, n, frames_per_chunk)])
        code = enc(x)
        out = dec(code)
    assert calls == [-(-10 // frames_per_chunk)] * 2, "both ends should run by chunks of frames"
    # float64 convolutions batched differently sum in another order: a few layers of
    # reduction_error(9 * 64, float64) ~ 6e-14 on O(1) values; 1e-12 leaves a decade of margin
    torch.testing.assert_close(code, whole_code, rtol=0, atol=1e-12)
    torch.testing.assert_close(out, whole, rtol=0, atol=1e-12)
    assert out.is_contiguous() and code.is_contiguous()


@pytest.mark.parametrize("pair", [_stack_pair, _conv_pair])
def test_head_per_chunk_equals_head_after_the_decoder(monkeypatch, pair) -> None:
    _, dec = pair()
    width = dec.conv_block_list[-1][0].out_channels if pair is _stack_pair else 16
    head = torch.nn.Linear(width, 2).double()
    code = torch.randn(2, 5, 3 if pair is _stack_pair else 4, 5, dec_in_channels(dec), dtype=torch.float64)
    with torch.no_grad():
        whole = head(dec(code))
        calls = _frame_chunk_calls(monkeypatch)
        monkeypatch.setattr(io, "FRAME_CHUNK_BYTES", 0)  # one frame per chunk
        chunked = dec(code, head=head)
    assert calls == [10] and chunked.shape == whole.shape and chunked.shape[-1] == 2
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)  # float64, as above
    trained = dec(code, head=head)  # autograd: the whole output, then the head
    torch.testing.assert_close(trained, whole, rtol=0, atol=1e-12)
    assert trained.grad_fn is not None


def dec_in_channels(dec) -> int:
    first = dec.upsample_list[0] if hasattr(dec, "upsample_list") else dec.upsample
    return first.conv.in_channels


def test_no_chunks_under_autograd(monkeypatch) -> None:
    enc, dec = _stack_pair()
    monkeypatch.setattr(io, "FRAME_CHUNK_BYTES", 0)
    calls = _frame_chunk_calls(monkeypatch)
    x = torch.randn(1, 5, 12, 18, 1, dtype=torch.float64)
    dec(enc(x)).sum().backward()  # parameters require grad: autograd needs the whole graph
    assert calls == []
    assert enc.conv_block_list[0][0].weight.grad is not None
    with torch.no_grad():
        dec(enc(x))
    assert calls == [5, 5]


def test_decoder_checks_frame_count_before_chunking(monkeypatch) -> None:
    _, dec = _stack_pair()
    monkeypatch.setattr(io, "FRAME_CHUNK_BYTES", 0)
    with torch.no_grad(), pytest.raises(ConfigError, match="expects 5 frames, got 4"):
        dec(torch.randn(1, 4, 2, 3, 6, dtype=torch.float64))
    with pytest.raises(ConfigError, match='"b t h w c"'):
        dec(torch.randn(4, 2, 3, 6, dtype=torch.float64))


def test_upsample_conv_writes_into_out() -> None:
    x, w, b = torch.randn(2, 3, 4, 5), torch.randn(6, 3, 3, 3), torch.randn(6)
    buffer = torch.full((2, 8, 15, 6), float("nan"))
    got = nearest_upsample_conv2d(x, w, b, (2, 3), out=buffer)
    assert got.data_ptr() == buffer.data_ptr() and not buffer.isnan().any()
    torch.testing.assert_close(got, nearest_upsample_conv2d(x, w, b, (2, 3)), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"out must be a contiguous .* of shape \(2, 8, 15, 6\)"):
        nearest_upsample_conv2d(x, w, b, (2, 3), out=torch.empty(2, 8, 16, 6))


def test_one_frame_stays_channels_last() -> None:
    # what "b t h w c -> (b t) c h w" gives for b * t == 1: a batch stride of c
    frame = torch.randn(1, 1, 5, 6, 3).flatten(0, 1).permute(0, 3, 1, 2)
    frame = frame.as_strided(frame.shape, (3, 1, 18, 3))
    assert not F.pad(frame, (1, 1, 1, 1)).is_contiguous(memory_format=torch.channels_last)
    fixed = channels_last_view(frame)
    assert torch.equal(fixed, frame) and fixed.data_ptr() == frame.data_ptr()
    assert F.pad(fixed, (1, 1, 1, 1)).is_contiguous(memory_format=torch.channels_last)
    two = torch.randn(2, 3, 5, 6)
    assert channels_last_view(two) is two
