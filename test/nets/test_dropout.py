"""The fast CPU dropout and the encoder attention that uses it."""
import torch
from torch import nn

from mser.nets.dropout import Dropout, dropout, self_attention
from mser.nets.frontend import UnimodalEncoder
from mser.utils.frames import padding_mask


def test_dropout_drops_at_its_rate_and_keeps_the_expectation():
    torch.manual_seed(0)
    x = torch.ones(200, 500)
    y = dropout(x, 0.2, True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.2) < 0.005
    assert torch.allclose(y[y != 0], torch.tensor(1.25))
    assert abs(y.mean().item() - 1.0) < 0.01


def test_dropout_follows_torchs_seed_and_is_the_identity_outside_training():
    x = torch.randn(7, 9)
    torch.manual_seed(3)
    first = dropout(x, 0.5, True)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(x, 0.5, True))
    assert not torch.equal(first, dropout(x, 0.5, True))  # the next call draws anew
    module = Dropout(0.5).eval()
    assert torch.equal(module(x), x)


def test_dropout_passes_gradients_through_the_kept_elements():
    torch.manual_seed(1)
    x = torch.randn(50, 40, requires_grad=True)
    y = dropout(x, 0.3, True)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.tensor(1 / 0.7))
    assert torch.all(x.grad[~kept] == 0)


def test_training_attention_equals_the_modules_own_without_dropout():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(16, 4, dropout=1e-9, batch_first=True).eval()
    x = torch.randn(3, 11, 16)
    pad = padding_mask(torch.tensor([11, 6, 2]), 11)
    reference = attn(x, x, x, key_padding_mask=pad, need_weights=False)[0]
    ours = self_attention(attn, x, pad, training=True)  # p rounds to no drop at all
    valid = ~pad
    torch.testing.assert_close(ours[valid], reference[valid], atol=1e-5, rtol=1e-5)


def test_encoder_runs_its_layers_as_the_module_does():
    """With every dropout at a p that drops nothing, training and eval forwards equal the
    TransformerEncoderLayer modules' own (whose weights and checkpoint keys they use)."""
    torch.manual_seed(0)
    encoder = UnimodalEncoder(16, 2, 4, 32, 1e-9).train()
    x = torch.randn(3, 10, 16)
    pad = padding_mask(torch.tensor([10, 7, 3]), 10)
    reference = x
    for layer in encoder.layers:
        reference = layer.eval()(reference, src_key_padding_mask=pad)
    reference = encoder.norm(reference)
    valid = ~pad
    torch.testing.assert_close(encoder.train()(x, pad)[valid], reference[valid], atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(encoder.eval()(x, pad)[valid], reference[valid], atol=1e-5,
                               rtol=1e-5)
