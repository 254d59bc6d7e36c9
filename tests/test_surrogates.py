"""Surrogate gradients (DPSNN paper eqs. 4-6) and their smooth primitives."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdpsnn.errors import UserError
from npdpsnn.model.config import ModelConfig
from npdpsnn.model.surrogates import (
    DARCTANH,
    GATE,
    NORMAL,
    SURROGATES,
    surrogate_code,
    surrogate_grad,
    surrogate_grad_vec,
    surrogate_primitive,
    surrogate_primitive_vec,
)

CODES = (GATE, DARCTANH, NORMAL)
finite_x = st.floats(-6.0, 6.0, allow_nan=False, allow_infinity=False)


def test_codes_and_names():
    assert SURROGATES == ("gate", "darctanh", "normal")
    assert (GATE, DARCTANH, NORMAL) == (0, 1, 2)
    for code, name in enumerate(SURROGATES):
        assert surrogate_code(name) == code


@pytest.mark.parametrize("name", ["Gate", "sigmoid", "", "arctan"])
def test_unknown_name_is_user_error(name):
    with pytest.raises(UserError, match="surrogate"):
        surrogate_code(name)
    with pytest.raises(UserError):
        ModelConfig(surrogate=name)


@settings(max_examples=200, deadline=None)
@given(code=st.sampled_from(CODES), x=finite_x)
def test_derivative_is_central_difference_of_primitive(code, x):
    h = 1e-6
    if code == GATE:  # the gate's primitive clip(x + 1/2, 0, 1) has kinks at +-1/2
        if abs(abs(x) - 0.5) < 1e-3:
            x = x + 2e-3 if x >= 0 else x - 2e-3
    fd = (surrogate_primitive(code, x + h) - surrogate_primitive(code, x - h)) / (2 * h)
    assert abs(fd - surrogate_grad(code, x)) <= 1e-8


@settings(max_examples=100, deadline=None)
@given(code=st.sampled_from(CODES), x=finite_x)
def test_symmetry(code, x):
    # g'(x) = g'(-x) and g(x) + g(-x) = 1 (every primitive is 1/2 at the threshold).
    assert surrogate_grad(code, x) == surrogate_grad(code, -x)
    assert surrogate_primitive(code, x) + surrogate_primitive(code, -x) == pytest.approx(1.0, abs=1e-15)
    assert 0.0 <= surrogate_grad(code, x) <= 1.0


@pytest.mark.parametrize("x", [0.0, 0.1, -0.3, 0.5, 1.0, -1.7, 3.0])
def test_darctanh_formula_eq5(x):
    # Eq. 5: 4 / (e^{-2x} + e^{2x} + 2) = sech(x)^2.
    expected = 4.0 / (math.exp(-2 * x) + math.exp(2 * x) + 2.0)
    assert surrogate_grad(DARCTANH, x) == pytest.approx(expected, rel=1e-15)
    assert surrogate_grad(DARCTANH, x) == pytest.approx(1.0 / math.cosh(x) ** 2, rel=1e-13)


def test_darctanh_pinned_values():
    assert surrogate_grad(DARCTANH, 0.0) == 1.0
    assert surrogate_grad(DARCTANH, 1.0) == pytest.approx(0.41997434161402614, rel=1e-14)
    # The overflow guard: no exception far away, and the value is (numerically) 0.
    assert surrogate_grad(DARCTANH, 1000.0) == 0.0
    assert surrogate_grad(DARCTANH, -1000.0) == 0.0
    assert 0.0 <= surrogate_grad(DARCTANH, 39.9) < 1e-33


@pytest.mark.parametrize("x", [0.0, 0.25, -0.5, 1.0, 2.0, -3.0])
def test_normal_formula_eq6(x):
    # Eq. 6 as intended: exp(-2 x^2), a bump (the paper prints e^{2x^2}, a typo).
    assert surrogate_grad(NORMAL, x) == pytest.approx(math.exp(-2 * x * x), rel=1e-15)


def test_normal_is_a_bump_not_the_typo():
    assert surrogate_grad(NORMAL, 0.0) == 1.0
    assert surrogate_grad(NORMAL, 1.0) == pytest.approx(math.exp(-2.0), rel=1e-15)
    assert surrogate_grad(NORMAL, 5.0) < 1e-20  # e^{+2x^2} would be ~5e21
    assert surrogate_grad(NORMAL, 30.0) == 0.0


def test_gate_eq4_strict_boundary():
    # Eq. 4: sign(|V - V_th| < 1/2): strictly inside the band.
    assert surrogate_grad(GATE, 0.0) == 1.0
    assert surrogate_grad(GATE, 0.4999999999) == 1.0
    assert surrogate_grad(GATE, -0.4999999999) == 1.0
    assert surrogate_grad(GATE, 0.5) == 0.0
    assert surrogate_grad(GATE, -0.5) == 0.0
    assert surrogate_grad(GATE, 0.5000000001) == 0.0
    assert surrogate_grad(GATE, -3.0) == 0.0


@pytest.mark.parametrize("code", CODES)
def test_primitive_values(code):
    assert surrogate_primitive(code, 0.0) == 0.5
    lo, hi = surrogate_primitive(code, -50.0), surrogate_primitive(code, 50.0)
    # The total rise equals the integral of the surrogate over the real line.
    total = {GATE: 1.0, DARCTANH: 2.0, NORMAL: math.sqrt(math.pi / 2.0)}[code]
    assert hi - lo == pytest.approx(total, rel=1e-14)
    if code == GATE:
        assert (lo, hi) == (0.0, 1.0)
        assert surrogate_primitive(GATE, 0.2) == pytest.approx(0.7, abs=1e-15)


@pytest.mark.parametrize("code", CODES)
def test_primitive_monotone(code):
    xs = np.linspace(-4, 4, 801)
    g = surrogate_primitive_vec(code, xs)
    assert np.all(np.diff(g) >= 0.0)


@pytest.mark.parametrize("code", CODES)
def test_vectorised_and_compiled_versions_agree(code):
    xs = np.array([-2.0, -0.5, -0.49, -0.1, 0.0, 0.3, 0.5, 0.51, 1.0, 45.0])
    expected = np.array([surrogate_grad(code, float(v)) for v in xs])
    assert np.array_equal(surrogate_grad_vec(code, xs), expected)
    # The kernels compile this very function with Numba.
    sg = numba.njit(surrogate_grad)
    compiled = np.array([sg(code, float(v)) for v in xs])
    assert np.allclose(compiled, expected, rtol=1e-15, atol=0.0)
    assert np.array_equal(surrogate_primitive_vec(code, xs), [surrogate_primitive(code, float(v)) for v in xs])
