"""Reused buffers are handed out again only when nothing else holds them."""

from __future__ import annotations

import torch

from spikeconv.neurons.workspace import reusable_empty, scratch


class Owner:
    """Stands for a module (weakly referenced)."""


def test_reused_once_released():
    owner, like = Owner(), torch.empty(3)
    first = reusable_empty(owner, "out", (4, 5), like)
    pointer = first.data_ptr()
    del first
    assert reusable_empty(owner, "out", (4, 5), like).data_ptr() == pointer
    assert reusable_empty(owner, "out", (4, 6), like).shape == (4, 6)  # another shape: a new buffer


def test_never_reused_while_held():
    """Held by a Python name, through a view, or only by an autograd node that saved it (no Python reference left)."""
    owner, like = Owner(), torch.empty(3)
    held = reusable_empty(owner, "a", (8,), like)
    assert reusable_empty(owner, "a", (8,), like) is not held
    view = reusable_empty(owner, "b", (8,), like)[2:]
    assert reusable_empty(owner, "b", (8,), like).data_ptr() != view.data_ptr() - 2 * view.element_size()
    weight = torch.ones(8, requires_grad=True)
    saved = reusable_empty(owner, "c", (8,), like).fill_(2.0)
    product = (weight * saved).sum()  # MulBackward saves `saved` for the weight's gradient
    pointer = saved.data_ptr()
    del saved
    fresh = reusable_empty(owner, "c", (8,), like).fill_(5.0)
    assert fresh.data_ptr() != pointer
    product.backward()
    assert torch.equal(weight.grad, torch.full((8,), 2.0))


def test_scratch_is_per_shape_and_reused():
    like = torch.empty(1)
    a = scratch((2, 3), like)
    assert scratch((2, 3), like).data_ptr() == a.data_ptr()
    assert scratch((3, 2), like).data_ptr() != a.data_ptr()
