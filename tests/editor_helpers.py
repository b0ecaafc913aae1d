"""Source text shared by the test realism editors that the tests write to disk (the realism
command, and Ray workers, import them by module name)."""

from __future__ import annotations

import textwrap

#: ``shuffle_tiles(frames)``: the frames (T, H, W, C) cut into 8x8 tiles, the tiles put in a fixed
#: (seed 0) random order, the same in every frame: the colours stay, the picture is destroyed,
#: so the realism fidelity check refuses it.
SHUFFLE_TILES = textwrap.dedent('''
    import numpy as np


    def shuffle_tiles(frames):
        t, h, w, c = frames.shape
        b = 8
        x = frames.reshape(t, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(t, -1, b, b, c)
        x = x[:, np.random.default_rng(0).permutation(x.shape[1])]
        x = x.reshape(t, h // b, w // b, b, b, c).transpose(0, 1, 3, 2, 4, 5)
        return np.ascontiguousarray(x.reshape(t, h, w, c))
''')
