"""Layers: gradients against central finite differences at smooth points, Conv2d and
MaxPool2d against direct loop implementations, and the declared choice at kinks."""

import numpy as np
import pytest
from _nn_fd import assert_tree_close, fd_grad

import kinkgrad
from kinkgrad import nn
from kinkgrad.nn.layers import im2col_index


def _signed(rng, shape, margin=0.1):
    """Entries with |x| in [margin, 1.5]: smooth points of relu / leaky_relu."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(margin, 1.5, shape)


def _check_layer_fd(layer, params, x, rng):
    """d/d(params, x) of sum(c * layer(params, x)) against finite differences."""
    c = rng.normal(size=np.shape(layer(params, x)))

    def f(p, xx):
        return kinkgrad.numpy.sum(layer(p, xx) * c)

    g = kinkgrad.grad(f, argnums=(0, 1))(params, x)
    want = fd_grad(lambda t: f(*t), (params, x))
    assert_tree_close(g, want, rtol=1e-6, atol=1e-8)


def test_dense_gradient_matches_finite_differences(rng):
    layer = nn.Dense(3)
    params, shape = layer.init(rng, (4,), np.float64)
    assert shape == (3,) and params["W"].shape == (4, 3) and params["b"].shape == (3,)
    _check_layer_fd(layer, params, rng.normal(size=(5, 4)), rng)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.LeakyReLU(0.1), nn.Flatten()])
def test_parameter_free_layers_gradient_matches_fd(layer, rng):
    x = _signed(rng, (3, 2, 4))
    if isinstance(layer, nn.Flatten):
        assert layer(None, x).shape == (3, 8)
    _check_layer_fd(layer, None, x, rng)


def conv_loop(x, W, b, stride, pad):
    """Direct definition: y[n,o,i,j] = b[o] + sum_{c,u,v} W[o,c,u,v] xp[n,c,i*s+u,j*s+v]."""
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    xp[:, :, pad : pad + h, pad : pad + w] = x
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    for ni in range(n):
        for oi in range(o):
            for i in range(oh):
                for j in range(ow):
                    acc = b[oi]
                    for ci in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                acc += W[oi, ci, u, v] * xp[ni, ci, i * stride + u, j * stride + v]
                    y[ni, oi, i, j] = acc
    return y


@pytest.mark.parametrize(
    "kernel,stride,pad,hw",
    [(3, 1, 0, (5, 5)), (3, 1, 1, (5, 4)), ((2, 3), 2, 1, (6, 7)), (1, 1, 0, (3, 3))],
)
def test_conv2d_matches_loop_implementation(kernel, stride, pad, hw, rng):
    layer = nn.Conv2d(3, kernel, stride=stride, padding=pad)
    params, shape = layer.init(rng, (2,) + hw, np.float64)
    x = rng.normal(size=(2, 2) + hw)
    y = layer(params, x)
    want = conv_loop(x, params["W"], params["b"], stride, pad)
    assert y.shape == want.shape and shape == want.shape[1:]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_conv2d_gradient_matches_finite_differences(rng):
    layer = nn.Conv2d(2, 3, stride=2, padding=1)
    params, _ = layer.init(rng, (2, 5, 5), np.float64)
    _check_layer_fd(layer, params, rng.normal(size=(2, 2, 5, 5)), rng)


def test_im2col_padding_points_at_the_appended_zero():
    idx = im2col_index(1, 2, 2, 3, 3, 1, 1)
    assert idx.shape == (4, 9)
    # output (0, 0) sees the padded corner (-1, -1) -> slot 4, and the input pixel (0, 0) -> 0
    assert idx[0, 0] == 4 and idx[0, 4] == 0
    assert set(np.unique(idx)) == {0, 1, 2, 3, 4}


def pool_loop(x, k, stride):
    n, c, h, w = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    y = np.zeros((n, c, oh, ow))
    for ni, ci, i, j in np.ndindex(n, c, oh, ow):
        y[ni, ci, i, j] = x[ni, ci, i * stride : i * stride + k, j * stride : j * stride + k].max()
    return y


def _distinct(rng, shape):
    """Distinct entries 0.1 apart: no ties in any pooling window (a smooth point)."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 - 1.0


@pytest.mark.parametrize(
    "k,stride,hw", [(2, None, (4, 6)), (2, None, (5, 5)), (3, 2, (7, 6)), (3, 1, (4, 4))]
)
def test_maxpool_matches_loop_and_finite_differences(k, stride, hw, rng):
    layer = nn.MaxPool2d(k, stride)
    x = _distinct(rng, (2, 2) + hw)
    _, shape = layer.init(rng, (2,) + hw, np.float64)
    want = pool_loop(x, k, layer.stride)
    y = layer(None, x)
    assert shape == want.shape[1:]
    np.testing.assert_array_equal(y, want)
    _check_layer_fd(layer, None, x, rng)


def test_maxpool_tie_sends_derivative_to_first_maximiser_in_row_major_order():
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 1, :] = 1.0  # tie between (1, 0) and (1, 1)
    g = kinkgrad.grad(lambda t: kinkgrad.numpy.sum(nn.MaxPool2d(2)(None, t)))(x)
    np.testing.assert_array_equal(g[0, 0], [[0.0, 0.0], [1.0, 0.0]])
    with kinkgrad.kink_policy(max="split"):
        g = kinkgrad.grad(lambda t: kinkgrad.numpy.sum(nn.MaxPool2d(2)(None, t)))(x)
    np.testing.assert_array_equal(g[0, 0], [[0.0, 0.0], [0.5, 0.5]])


@pytest.mark.parametrize("relu0", [0.0, 0.5, 1.0])
def test_relu_layer_uses_the_declared_derivative_at_zero(relu0):
    x = np.array([[-1.0, 0.0, 2.0]])
    g = kinkgrad.grad(
        lambda t: kinkgrad.numpy.sum(nn.ReLU()(None, t)), policy=kinkgrad.kink_policy(relu=relu0)
    )(x)
    np.testing.assert_array_equal(g, [[0.0, relu0, 1.0]])
    g = kinkgrad.grad(
        lambda t: kinkgrad.numpy.sum(nn.LeakyReLU(0.2)(None, t)),
        policy=kinkgrad.kink_policy(leaky_relu=relu0),
    )(x)
    np.testing.assert_allclose(g, [[0.2, 0.2 + relu0 * 0.8, 1.0]])


def test_small_cnn_gradient_matches_finite_differences(rng):
    model = nn.Sequential(
        nn.Conv2d(2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dense(3)
    )
    params, shape = model.init(3, (1, 4, 4), np.float64)
    assert shape == (3,)
    x = rng.normal(size=(2, 1, 4, 4))
    # the point must be smooth: no ReLU input near 0, no near-tie in a pooling window
    pre = nn.Conv2d(2, 3, padding=1)(params["0_conv"], x)
    assert np.min(np.abs(pre)) > 1e-3
    act = np.maximum(pre, 0).reshape(2, 2, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    top2 = np.sort(act.reshape(2, 2, 2, 2, 4), axis=-1)[..., -2:]
    assert np.all((top2[..., 1] - top2[..., 0] > 1e-3) | (top2[..., 1] == 0))
    y = np.array([0, 2])

    def loss(p):
        return nn.cross_entropy(model(p, x), y)

    assert_tree_close(kinkgrad.grad(loss)(params), fd_grad(loss, params), rtol=1e-5, atol=1e-8)


def test_sequential_init_is_seeded_and_named():
    model = nn.Sequential(nn.Dense(4), nn.ReLU(), nn.Dense(2))
    p1, _ = model.init(7, (3,), np.float32)
    p2, _ = model.init(7, (3,), np.float32)
    p3, _ = model.init(8, (3,), np.float32)
    assert sorted(p1) == ["0_dense", "2_dense"] and p1["0_dense"]["W"].dtype == np.float32
    np.testing.assert_array_equal(p1["0_dense"]["W"], p2["0_dense"]["W"])
    assert not np.array_equal(p1["0_dense"]["W"], p3["0_dense"]["W"])
    bound = 1 / np.sqrt(3)  # PyTorch's default U(-1/sqrt(fan_in), ...)
    assert np.all(np.abs(p1["0_dense"]["W"]) <= bound)


def test_dense_rejects_images():
    with pytest.raises(kinkgrad.KinkgradError, match="Flatten"):
        nn.Dense(3).init(np.random.default_rng(0), (1, 8, 8), np.float64)


def test_conv2d_takes_ints_and_pairs_as_torch_and_refuses_the_rest(rng):
    # stride=(2, 1) raised a TypeError, kernel_size=(3,) an IndexError, (3, 3, 3) was 3x3
    layer = nn.Conv2d(3, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0))
    params, shape = layer.init(rng, (2, 6, 7), np.float64)
    x = rng.normal(size=(2, 2, 6, 7))
    want = conv_loop_pairs(x, params["W"], params["b"], (2, 1), (1, 0))
    y = layer(params, x)
    assert shape == want.shape[1:] == y.shape[1:]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    assert nn.Conv2d(3, (3, 3), stride=(2, 2)).stride == nn.Conv2d(3, 3, stride=2).stride
    for kw, match in (({"kernel_size": (3,)}, r"kernel_size=\(3,\)"),
                      ({"kernel_size": (3, 3, 3)}, r"kernel_size=\(3, 3, 3\)"),
                      ({"stride": (2, 1, 1)}, "stride="), ({"padding": 1.5}, "padding=1.5"),
                      ({"stride": (1, 0)}, "stride=0")):
        with pytest.raises(kinkgrad.KinkgradError, match=match):
            nn.Conv2d(2, **kw)
    assert nn.MaxPool2d((2, 2), stride=(1, 1)).stride == 1
    with pytest.raises(kinkgrad.KinkgradError, match="square"):
        nn.MaxPool2d(2, stride=(2, 1))


def conv_loop_pairs(x, W, b, stride, pad):
    """conv_loop with (sh, sw) and (ph, pw): the definition, entry by entry."""
    n, c, h, w = x.shape
    o, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = stride, pad
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp[:, :, ph : ph + h, pw : pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y = np.zeros((n, o, oh, ow))
    for ni, oi, i, j in np.ndindex(n, o, oh, ow):
        win = xp[ni, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
        y[ni, oi, i, j] = b[oi] + np.sum(win * W[oi])
    return y


def test_flatten_and_a_cnn_on_an_empty_batch():
    # Flatten gave (0, 0) for (0, C, H, W), and the next Dense refused it
    assert nn.Flatten()(None, np.zeros((0, 3, 2, 2))).shape == (0, 12)
    cnn = nn.Sequential(nn.Conv2d(2, 3), nn.ReLU(), nn.Flatten(), nn.Dense(3))
    params, _ = cnn.init(0, (1, 5, 5), np.float64)
    assert cnn(params, np.zeros((0, 1, 5, 5))).shape == (0, 3)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.Dense(0), "features=0"),
    (lambda: nn.Dense(3, init="nope"), "init='nope'"),
    (lambda: nn.Conv2d(0), "out_channels=0"),
    (lambda: nn.Conv2d(2, kernel_size=(3, 0)), "kernel_size=0"),
    (lambda: nn.Conv2d(2, stride=0), "stride=0"),
    (lambda: nn.Conv2d(2, padding=-1), "padding=-1"),
    (lambda: nn.MaxPool2d(0), "kernel_size=0"),
    (lambda: nn.MaxPool2d(2, stride=0), "stride=0"),
    (lambda: nn.SGD(lr=float("nan")), "lr=nan"),
    (lambda: nn.SGD(lr=0.1, weight_decay=-1.0), "weight_decay=-1.0"),
    (lambda: nn.Adam(lr=1e-3, betas=(1.5, 0.9)), "betas"),
    (lambda: nn.Adam(lr=float("inf")), "lr=inf"),
    (lambda: list(nn.batches(4, 0)), "batch=0"),
    (lambda: nn.train(nn.TrainConfig(epochs=0, progress=False)), "epochs=0"),
])
def test_layer_optimizer_and_loop_arguments_out_of_range_are_refused(make, match):
    # each was accepted before (a Dense of 0 units, an SGD step of NaN, a pool of stride 0,
    # zero epochs) or failed inside NumPy
    with pytest.raises(kinkgrad.KinkgradError, match=match):
        make()
