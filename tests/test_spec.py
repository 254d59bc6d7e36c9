"""Network spec strings: Net1, Net2, the face net, syntax and errors."""

from __future__ import annotations

import pytest

from npdpsnn.errors import SpecError, UserError
from npdpsnn.model.params import param_slots
from npdpsnn.model.spec import NET1, NET2, face_net, parse_spec, resolve_spec


def _shapes(layers):
    return [(layer.kind, layer.out_shape) for layer in layers]


def _n_params(layers):
    return sum(s.size for s in param_slots(layers))


def test_net_strings_match_paper():
    assert NET1 == "16C8S2-P2S1-32C4S2-P2S1-32-10"
    assert NET2 == "16C7S1-P2S2-32C4S1-P2S2-32-10"
    assert face_net(38) == "16C7S1-P2S2-32C4S1-P2S2-128-38"


def test_net2_shapes_on_mnist():
    layers = parse_spec(NET2, (1, 28, 28))
    assert _shapes(layers) == [
        ("conv", (16, 22, 22)),
        ("maxpool", (16, 11, 11)),
        ("conv", (32, 8, 8)),
        ("maxpool", (32, 4, 4)),
        ("fc", (32, 1, 1)),
        ("fc", (10, 1, 1)),
    ]
    assert [layer.name for layer in layers] == ["conv1", "", "conv2", "", "fc1", "fc2"]
    assert layers[4].in_shape == (32, 4, 4) and layers[4].in_size == 512
    assert layers[4].weight_shape == (32, 512)
    assert layers[0].weight_shape == (16, 1, 7, 7) and layers[2].weight_shape == (32, 16, 4, 4)
    # conv1 16*1*7*7+16, conv2 32*16*4*4+32, fc1 32*512+32, fc2 10*32+10
    assert _n_params(layers) == 800 + 8224 + 16416 + 330 == 25770


def test_net1_shapes_on_mnist():
    layers = parse_spec(NET1, (1, 28, 28))
    assert _shapes(layers) == [
        ("conv", (16, 11, 11)),
        ("maxpool", (16, 10, 10)),
        ("conv", (32, 4, 4)),
        ("maxpool", (32, 3, 3)),
        ("fc", (32, 1, 1)),
        ("fc", (10, 1, 1)),
    ]
    assert (layers[0].kernel, layers[0].stride, layers[1].kernel, layers[1].stride) == (8, 2, 2, 1)
    # conv1 16*64+16, conv2 32*16*16+32, fc1 32*288+32, fc2 330
    assert _n_params(layers) == 1040 + 8224 + 9248 + 330 == 18842


def test_face_net_on_32x32():
    layers = parse_spec(face_net(38), (1, 32, 32))
    assert _shapes(layers) == [
        ("conv", (16, 26, 26)),
        ("maxpool", (16, 13, 13)),
        ("conv", (32, 10, 10)),
        ("maxpool", (32, 5, 5)),
        ("fc", (128, 1, 1)),
        ("fc", (38, 1, 1)),
    ]
    assert _n_params(layers) == 800 + 8224 + (128 * 800 + 128) + (38 * 128 + 38)


def test_resolve_spec():
    assert resolve_spec("net1") == NET1
    assert resolve_spec(" NET2 ") == NET2
    assert resolve_spec("Net2", num_classes=38) == "16C7S1-P2S2-32C4S1-P2S2-32-38"
    assert resolve_spec("4C3S1-10") == "4C3S1-10"


def test_padding_syntax():
    (conv, fc) = parse_spec("16C3S1P1-10", (1, 28, 28))
    assert (conv.kernel, conv.stride, conv.padding) == (3, 1, 1)
    assert conv.out_shape == (16, 28, 28)  # "same" padding
    (conv, _) = parse_spec("4C3S2P2-10", (2, 5, 7))
    assert conv.out_shape == (4, (5 + 4 - 3) // 2 + 1, (7 + 4 - 3) // 2 + 1) == (4, 4, 5)
    assert conv.fan_in == 2 * 9
    # A kernel larger than the raw input fits thanks to padding.
    (conv, _) = parse_spec("2C5S1P1-3", (1, 3, 3))
    assert conv.out_shape == (2, 1, 1)


def test_optional_stride_and_avg_pool():
    layers = parse_spec("8C3-A2S2-P3-5", (1, 12, 12))
    assert layers[0].stride == 1 and layers[0].out_shape == (8, 10, 10)
    assert layers[1].kind == "avgpool" and layers[1].out_shape == (8, 5, 5)
    assert layers[2].kind == "maxpool" and layers[2].stride == 3 and layers[2].out_shape == (8, 1, 1)
    assert layers[3].in_size == 8


def test_fc_only_and_pool_shapes_non_square():
    layers = parse_spec("7-3", (2, 3, 5))
    assert layers[0].weight_shape == (7, 30) and layers[1].weight_shape == (3, 7)
    layers = parse_spec("3C2S1-P2S2-4", (1, 5, 8))
    assert layers[0].out_shape == (3, 4, 7) and layers[1].out_shape == (3, 2, 3)


@pytest.mark.parametrize(
    "spec, shape, token",
    [
        ("16X3-10", (1, 8, 8), "16X3"),  # unknown token
        ("16C3S1-ten", (1, 8, 8), "ten"),
        ("16c3s1-10", (1, 8, 8), "16c3s1"),
        ("16C9S1-10", (1, 8, 8), "16C9S1"),  # kernel larger than input
        ("4C3S1-P9S1-10", (1, 8, 8), "P9S1"),  # pool larger than its input
        ("0C3S1-10", (1, 8, 8), "0C3S1"),  # zero sizes
        ("16C0S1-10", (1, 8, 8), "16C0S1"),
        ("16C3S0-10", (1, 8, 8), "16C3S0"),
        ("4C3S1-P0S1-10", (1, 8, 8), "P0S1"),
        ("4C3S1-P2S0-10", (1, 8, 8), "P2S0"),
        ("4C3S1-0", (1, 8, 8), "0"),
        ("16C3S1", (1, 8, 8), "16C3S1"),  # last layer not fc
        ("16C3S1-P2S2", (1, 8, 8), "P2S2"),
        ("P2S2-10", (1, 8, 8), "P2S2"),  # pool first
        ("A2S2-10", (1, 8, 8), "A2S2"),
        ("10-4C3S1-2", (1, 8, 8), "4C3S1"),  # conv after fc
        ("10-P2S2-2", (1, 8, 8), "P2S2"),
    ],
)
def test_bad_specs_name_the_token(spec, shape, token):
    with pytest.raises(SpecError) as exc:
        parse_spec(spec, shape)
    assert repr(token) in str(exc.value)
    assert isinstance(exc.value, UserError)


@pytest.mark.parametrize("spec", ["16C3S1--10", "-10", "10-", "16C3S1- -10"])
def test_empty_token(spec):
    with pytest.raises(SpecError, match="empty layer token"):
        parse_spec(spec, (1, 8, 8))


@pytest.mark.parametrize("spec", ["", "   ", None])
def test_empty_spec(spec):
    with pytest.raises(SpecError):
        parse_spec(spec, (1, 8, 8))


@pytest.mark.parametrize("shape", [(1, 0, 8), (0, 8, 8), (1, 8), "abc"])
def test_bad_input_shape(shape):
    with pytest.raises(SpecError):
        parse_spec("10", shape)


# --------------------------------------------------------------------------- size limits (issue 9)


@pytest.mark.parametrize("spec", ["１６C3S1-10", "16C３S1-10", "4C3S1-1０", "16C3S1-１0"])
def test_full_width_digits_are_refused(spec):
    with pytest.raises(SpecError, match="non-ASCII"):
        parse_spec(spec, (1, 8, 8))


@pytest.mark.parametrize("spec, match", [
    ("99999999999C5S1-10", "at most 9 digits"),
    ("9" * 900 + "-10", "at most 9 digits"),  # never reaches int(): Python refuses > 4300 digits
    ("10-" * 400 + "10", "more than the limit of 1000"),
    ("100000-100000-10", "parameters, more than the limit"),
    ("999999999C5S1-10", "parameters, more than the limit"),
    ("4C3S1P5000-P9999S9999-10", "activations"),  # few parameters, 10026x10026 maps
])
def test_size_limits_name_the_limit(spec, match):
    with pytest.raises(SpecError, match=match) as info:
        parse_spec(spec, (1, 28, 28))
    assert "\n" not in str(info.value)


def test_activation_limit_depends_on_T():
    from npdpsnn.limits import MAX_ACTIVATION_BYTES
    from npdpsnn.model.spec import activation_bytes, check_network_size

    layers = parse_spec("64C3S1P1-10", (1, 64, 64))
    check_network_size(layers, 5)
    assert activation_bytes(layers, 1000) > MAX_ACTIVATION_BYTES
    with pytest.raises(SpecError, match="activations per example at T = 1000, more than the limit"):
        check_network_size(layers, 1000)
    check_network_size(parse_spec(NET2, (1, 28, 28)), 1000)  # the paper's net fits any allowed T


def test_T_limit_in_model_config():
    from npdpsnn.limits import MAX_T
    from npdpsnn.model.config import ModelConfig

    assert ModelConfig(T=MAX_T).T == MAX_T
    for T in (MAX_T + 1, 100_000_000):
        with pytest.raises(UserError, match=f"above the limit of {MAX_T}"):
            ModelConfig(T=T)
    for bad in ({"threshold": "0.5"}, {"leak": float("nan")}, {"detach_reset": 1}):
        with pytest.raises(UserError):
            ModelConfig(**bad)
