"""The names of the backend protocol (docs/backends.md), in one tuple.

Each backend package (:mod:`nblstm.cpu`, :mod:`nblstm.cuda`) provides every
name here; ``tests/test_backends.py`` and ``tests/cuda/test_protocol.py`` check
that it does. :mod:`nblstm._api` calls nothing else of a backend.
"""

__all__ = ["PROTOCOL"]

PROTOCOL = (
    # arrays: where they come from
    "empty", "zeros", "zeros_input", "scratch",
    # the layer functions and the work between layers
    "forward_layer", "backward_layer", "reverse_sequences", "zero_padding", "add",
    # the boundary: user arrays in, user arrays out
    "asarray", "is_device", "to_internal", "from_internal", "finite_each", "as_operand",
    "copy_as", "to_user", "view_internal", "empty_batch_first", "expand_dims",
)
