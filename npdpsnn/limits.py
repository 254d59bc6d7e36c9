"""Every size limit in one place: models, checkpoint and model files, data files.

The limits stop memory bombs -- a spec, ``T`` or file that asks for more memory
than any sensible run needs -- with a one-line error naming the limit, checked
*before* anything is allocated.  They are far above the paper's networks (Net2
on MNIST has about 26 k parameters and needs about 2 MB of activations per
example at ``T = 5``, 400 MB at ``T = 1000``).
"""

from __future__ import annotations

# ------------------------------------------------------------------ models
#: Longest time window ``T``.
MAX_T = 1_000
#: Longest network spec string, in characters.
MAX_SPEC_CHARS = 1_000
#: Most digits in one number of a spec (so every number is below 10**9).
MAX_SPEC_DIGITS = 9
#: Most trainable parameters in a network.
MAX_PARAMS = 50_000_000
#: Most bytes of activations, membrane potentials and scratch that one thread
#: holds for one example over the whole time window (see
#: :func:`npdpsnn.model.spec.activation_bytes`).
MAX_ACTIVATION_BYTES = 1 << 30

# ------------------------------------------------------------------ HDF5 files we read
#: Longest JSON (or other string) attribute, in bytes.
MAX_ATTR_BYTES = 16 << 20
#: Most attributes on the root of a checkpoint or model file.
MAX_ATTRS = 64
#: Most groups and datasets (links) in a checkpoint or model file.
MAX_HDF5_OBJECTS = 4_096
#: Largest checkpoint or model file: float32 weights and a float64 velocity of
#: :data:`MAX_PARAMS` parameters, plus room for the JSON records.
MAX_CHECKPOINT_BYTES = MAX_PARAMS * (4 + 8) + (64 << 20)

# ------------------------------------------------------------------ data files
#: Largest dataset file read (compressed IDX, PGM, ``.mat``).
MAX_DATA_FILE_BYTES = 1 << 30
#: Largest payload a data file may declare (decompressed IDX data, PGM pixels,
#: the ``.mat`` variables).
MAX_DATA_RAW_BYTES = 1 << 30
