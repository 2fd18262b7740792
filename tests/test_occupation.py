"""Electron counts and the restricted/unrestricted forms of per-channel arrays."""

import jax.numpy as jnp
import numpy as np
import pytest

from dftad.occupation import Occupation


def test_restricted_and_unrestricted_forms():
    r, u = Occupation(3, 3, restricted=True), Occupation(3, 2, restricted=False)
    assert r.per_orbital == 2.0 and u.per_orbital == 1.0
    assert r.counts == (3,) and u.counts == (3, 2) and u.homo == 2
    np.testing.assert_array_equal(r.occupations(5), [2, 2, 2, 0, 0])
    np.testing.assert_array_equal(u.occupations(5), [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    d = jnp.arange(8.0).reshape(2, 2, 2)
    assert len(u.channels(d)) == 2 and u.join(u.channels(d)).shape == (2, 2, 2)
    np.testing.assert_array_equal(u.total(d), d[0] + d[1])
    np.testing.assert_array_equal(r.total(d[0]), d[0])
    np.testing.assert_array_equal(u.total(u.split_evenly(d[0])), d[0])


def test_restricted_needs_spin_zero():
    with pytest.raises(ValueError, match="restricted"):
        Occupation(3, 2, restricted=True)
