"""course_utils.filters against PyTorch and OpenCV on random inputs."""

import re

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils import filter_plots, filters
from course_utils.env import samples_dir

RNG = np.random.default_rng(0)
BORDER = cv2.BORDER_CONSTANT  # zero padding, as conv2d does (OpenCV's default reflects the border)


def torch_conv(image: np.ndarray, kernels: np.ndarray, stride=1, padding=0) -> np.ndarray:
    """PyTorch's answer for a C x H x W image and F x C x kh x kw kernels."""
    out = F.conv2d(torch.from_numpy(image)[None], torch.from_numpy(kernels), stride=stride, padding=padding)
    return out[0].numpy()


# (image height, width), (kernel height, width), stride, padding: square and not, strides that do
# not divide evenly, stride larger than the kernel, padding per side, a kernel as large as the image
CASES = [
    ((7, 7), (3, 3), 1, 0),
    ((6, 9), (3, 3), 1, 1),
    ((9, 6), (2, 4), 2, 0),
    ((8, 11), (3, 5), (2, 3), (1, 2)),
    ((5, 13), (1, 1), 3, 0),
    ((10, 7), (4, 4), 3, 2),
    ((5, 4), (5, 4), 1, 0),
    ((4, 4), (3, 3), 5, 1),
]


@pytest.mark.parametrize("image_shape, kernel_shape, stride, padding", CASES)
def test_conv2d_matches_torch(image_shape, kernel_shape, stride, padding):
    image, kernel = RNG.normal(size=image_shape), RNG.normal(size=kernel_shape)
    expected = torch_conv(image[None], kernel[None, None], stride, padding)[0]
    fast = filters.conv2d(image, kernel, stride=stride, padding=padding)
    assert fast.shape == expected.shape
    np.testing.assert_allclose(fast, expected, atol=1e-10)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), ((1, 2), (2, 0))])
def test_conv2d_channels_and_filter_banks_match_torch(stride, padding):
    image = RNG.normal(size=(3, 9, 12))
    bank = RNG.normal(size=(5, 3, 3, 4))
    expected = torch_conv(image, bank, stride, padding)
    np.testing.assert_allclose(filters.conv2d(image, bank, stride, padding), expected, atol=1e-10)
    # one filter as deep as the image gives one map; a bank of 2-D filters on a grey image, one map each
    np.testing.assert_allclose(filters.conv2d(image, bank[1], stride, padding), expected[1], atol=1e-10)
    grey_bank = bank[:, 0]
    np.testing.assert_allclose(filters.conv2d(image[0], grey_bank, stride, padding),
                               torch_conv(image[:1], grey_bank[:, None], stride, padding), atol=1e-10)


def test_conv2d_is_a_sum_of_per_channel_convolutions():
    image, kernel = RNG.normal(size=(3, 6, 8)), RNG.normal(size=(3, 3, 3))
    per_channel = sum(filters.conv2d(image[c], kernel[c], padding=1) for c in range(3))
    np.testing.assert_allclose(filters.conv2d(image, kernel, padding=1), per_channel, atol=1e-10)


@pytest.mark.parametrize("shape", [(3, 3), (5, 3), (3, 7), (1, 5)])
def test_conv2d_with_same_padding_matches_opencv_filter2d(shape):
    image, kernel = RNG.normal(size=(12, 17)), RNG.normal(size=shape)
    expected = cv2.filter2D(image, -1, kernel, borderType=BORDER)
    padding = (shape[0] // 2, shape[1] // 2)
    np.testing.assert_allclose(filters.conv2d(image, kernel, padding=padding), expected, atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 4), (2, 3)])
def test_conv2d_without_padding_matches_opencv_filter2d_anchored_at_the_corner(shape):
    image, kernel = RNG.normal(size=(9, 14)), RNG.normal(size=shape)
    full = cv2.filter2D(image, -1, kernel, anchor=(0, 0), borderType=BORDER)  # window starts at the pixel
    valid = full[: image.shape[0] - shape[0] + 1, : image.shape[1] - shape[1] + 1]
    np.testing.assert_allclose(filters.conv2d(image, kernel), valid, atol=1e-10)


def test_convolve2d_flips_the_kernel():
    scipy_signal = pytest.importorskip("scipy.signal")
    image, kernel = RNG.normal(size=(10, 13)), RNG.normal(size=(3, 5))
    np.testing.assert_allclose(filters.convolve2d(image, kernel), scipy_signal.convolve2d(image, kernel, "valid"),
                               atol=1e-10)
    np.testing.assert_allclose(filters.convolve2d(image, kernel, padding=(1, 2)),
                               scipy_signal.convolve2d(image, kernel, "same"), atol=1e-10)
    # one bright pixel: convolution stamps the kernel, cross-correlation (conv2d) stamps it flipped
    impulse = np.zeros((5, 5))
    impulse[2, 2] = 1
    small = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(filters.convolve2d(impulse, small, padding=1)[1:4, 1:4], small)
    np.testing.assert_array_equal(filters.conv2d(impulse, small, padding=1)[1:4, 1:4], small[::-1, ::-1])


def test_conv2d_rejects_bad_input_clearly():
    with pytest.raises(ValueError, match="does not fit"):
        filters.conv2d(np.zeros((3, 3)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="depth"):
        filters.conv2d(np.zeros((3, 8, 8)), np.zeros((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="stride"):
        filters.conv2d(np.zeros((8, 8)), np.zeros((3, 3)), stride=0)
    with pytest.raises(ValueError, match="padding"):
        filters.conv2d(np.zeros((8, 8)), np.zeros((3, 3)), padding=-1)
    with pytest.raises(ValueError, match="as deep as the image"):
        filters.conv2d(np.zeros((8, 8)), np.zeros((3,)))


@pytest.mark.parametrize("size, kernel, stride, padding", [
    (28, 3, 1, 0), (28, 3, 1, 1), (28, 5, 2, 2), (7, 3, 2, 0), (224, 7, 2, 3), (10, 4, 3, 1), (5, 5, 1, 0),
])
def test_conv_output_size_matches_torch_shapes(size, kernel, stride, padding):
    conv = torch.nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)
    out = conv(torch.zeros(1, 1, size, size + 3))
    assert tuple(out.shape[2:]) == (filters.conv_output_size(size, kernel, stride, padding),
                                    filters.conv_output_size(size + 3, kernel, stride, padding))
    if 2 * padding <= kernel:
        pooled = F.max_pool2d(torch.zeros(1, 1, size, size), kernel, stride, padding)
        assert pooled.shape[-1] == filters.conv_output_size(size, kernel, stride, padding)


def test_conv_output_size_rejects_impossible_windows():
    with pytest.raises(ValueError, match="does not fit"):
        filters.conv_output_size(3, 5)
    with pytest.raises(ValueError):
        filters.conv_output_size(8, 3, stride=0)


def test_zero_pad_pads_only_height_and_width():
    x = RNG.normal(size=(2, 3, 4))
    padded = filters.zero_pad(x, (1, 2))
    assert padded.shape == (2, 5, 8)
    np.testing.assert_array_equal(padded[:, 1:-1, 2:-2], x)
    assert padded.sum() == pytest.approx(x.sum())
    np.testing.assert_array_equal(padded, F.pad(torch.from_numpy(x), (2, 2, 1, 1)).numpy())


POOL_CASES = [  # shape, size, stride, padding
    ((6, 6), 2, None, 0),
    ((7, 9), 2, None, 0),  # leftover row and column are dropped
    ((3, 8, 10), 3, 2, 1),  # overlapping windows with padding
    ((9, 5), (3, 2), (2, 1), (1, 0)),
    ((5, 11), 4, 3, 2),
    ((4, 4), 4, None, 0),
]


@pytest.mark.parametrize("shape, size, stride, padding", POOL_CASES)
def test_pooling_matches_torch(shape, size, stride, padding):
    x = RNG.normal(size=shape)
    t = torch.from_numpy(x)[None]
    torch_stride = size if stride is None else stride
    expected = {
        "max": F.max_pool2d(t, size, torch_stride, padding),
        "avg": F.avg_pool2d(t, size, torch_stride, padding),  # padding counts as zeros, as in pool2d
    }
    for mode, want in expected.items():
        got = filters.pool2d(x, size, stride, mode, padding)
        assert got.shape == tuple(want.shape[1:])
        np.testing.assert_allclose(got, want[0].numpy(), atol=1e-12)
    if padding == 0:  # sum pooling is PyTorch's power-average pooling with power 1
        want = F.lp_pool2d(t, 1, size, torch_stride)[0].numpy()
        np.testing.assert_allclose(filters.pool2d(x, size, stride, "sum"), want, atol=1e-10)


def test_pooling_a_small_array_by_hand():
    x = np.array([[1, 2, 5, 0], [3, 4, 1, 1], [0, -1, 7, 8], [-2, 6, 9, 6]], dtype=float)
    np.testing.assert_array_equal(filters.pool2d(x, 2, mode="max"), [[4, 5], [6, 9]])
    np.testing.assert_array_equal(filters.pool2d(x, 2, mode="sum"), [[10, 7], [3, 30]])
    np.testing.assert_array_equal(filters.pool2d(x, 2, mode="avg"), [[2.5, 1.75], [0.75, 7.5]])


def test_pooling_rejects_bad_input_clearly():
    with pytest.raises(ValueError, match="mode"):
        filters.pool2d(np.zeros((4, 4)), mode="median")
    with pytest.raises(ValueError, match="half the window"):
        filters.pool2d(np.zeros((4, 4)), 2, padding=2)
    with pytest.raises(ValueError, match="does not fit"):
        filters.pool2d(np.zeros((3, 3)), 4)


def photo_grey() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(samples_dir() / "chelsea.png")), cv2.COLOR_BGR2GRAY).astype(np.float64)


def same(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return filters.conv2d(image, kernel, padding=(kernel.shape[0] // 2, kernel.shape[1] // 2))


def test_presets_match_opencv_filters():
    image = RNG.uniform(0, 255, size=(40, 57))
    sobel_x = cv2.Sobel(image, cv2.CV_64F, 1, 0, ksize=3, borderType=BORDER)
    sobel_y = cv2.Sobel(image, cv2.CV_64F, 0, 1, ksize=3, borderType=BORDER)
    laplacian = cv2.Laplacian(image, cv2.CV_64F, ksize=1, borderType=BORDER)
    np.testing.assert_allclose(same(image, filters.PRESETS["sobel x"]), sobel_x, atol=1e-9)
    np.testing.assert_allclose(same(image, filters.PRESETS["sobel y"]), sobel_y, atol=1e-9)
    np.testing.assert_allclose(same(image, filters.PRESETS["laplacian (edges)"]), laplacian, atol=1e-9)
    np.testing.assert_allclose(same(image, filters.PRESETS["sharpen"]), image - laplacian, atol=1e-9)
    np.testing.assert_allclose(same(image, filters.PRESETS["box blur"]),
                               cv2.blur(image, (3, 3), borderType=BORDER), atol=1e-9)
    np.testing.assert_allclose(same(image, filters.PRESETS["gaussian blur"]),
                               cv2.GaussianBlur(image, (3, 3), 0, borderType=BORDER), atol=1e-9)
    np.testing.assert_array_equal(same(image, filters.PRESETS["identity"]), image)


def test_the_articles_wrong_sobel_differs_from_opencv_and_reacts_to_flat_brightness():
    np.testing.assert_array_equal(filters.SOBEL_X_WRONG, [[-1, 0, 1], [0, 0, 0], [1, 2, 1]])  # as printed there
    image = RNG.uniform(0, 255, size=(20, 30))
    wrong = same(image, filters.SOBEL_X_WRONG)
    assert not np.allclose(wrong, cv2.Sobel(image, cv2.CV_64F, 1, 0, ksize=3, borderType=BORDER))
    flat = np.full((9, 9), 100.0)
    assert filters.conv2d(flat, filters.SOBEL_X).max() == 0  # the correct one sees no edge
    np.testing.assert_array_equal(filters.conv2d(flat, filters.SOBEL_X_WRONG), 400.0)  # 4 x the brightness


def test_the_wrong_sobel_cannot_tell_opposite_edges_apart_but_answers_horizontal_ones():
    """Patches of equal mean (50) whose edges run opposite ways: lesson 2's probes."""
    rising = np.array([[0.0, 50, 100]] * 3)  # dark -> bright, left to right
    below = rising.T  # dark above, bright below

    def answers(kernel):
        return [float(np.sum(patch * kernel)) for patch in (rising, rising[:, ::-1], below, below[::-1])]

    assert answers(filters.SOBEL_X) == [400, -400, 0, 0]  # the sign tells the direction; horizontal: nothing
    assert answers(filters.SOBEL_X_WRONG) == [300, 100, 400, 0]  # both vertical ones > 0


def test_the_shared_presets_are_read_only():
    with pytest.raises(ValueError, match="read-only"):
        filters.PRESETS["sobel x"][0, 0] = 99
    with pytest.raises(ValueError, match="read-only"):
        filters.SOBEL_X[0, 0] = 99  # the shared presets cannot be changed by accident


def test_kernel_kind_tells_smoothing_from_other_kernels_that_keep_brightness():
    kinds = {name: filters.kernel_kind(k) for name, k in filters.PRESETS.items()}
    assert kinds == {"identity": "copy", "box blur": "smoothing", "gaussian blur": "smoothing",
                     "sharpen": "image + edges", "sobel x": "edge", "sobel y": "edge", "laplacian (edges)": "edge",
                     "wrong sobel x (article)": "other"}
    assert set(kinds.values()) == set(filters.KERNEL_KINDS)
    identity = filters.PRESETS["identity"]
    assert filters.kernel_kind(filters.SOBEL_X + identity) == "image + edges"  # lesson 2's exercise 3
    assert filters.kernel_kind(np.roll(identity, 1, axis=1)) == "copy"  # a shifted copy
    assert filters.kernel_kind(identity * 2) == "other"
    # every brightness-keeping kernel with a negative weight is the identity plus an edge kernel
    assert filters.kernel_kind(filters.PRESETS["sharpen"] - identity) == "edge"


def test_edge_filter_bank_finds_the_edge_it_names():
    bank = filters.edge_filter_bank()
    assert bank.shape == (4, 4, 4)
    np.testing.assert_array_equal(bank[1], -bank[0])
    np.testing.assert_array_equal(bank[2], bank[0].T)
    np.testing.assert_array_equal(bank[3], -bank[0].T)
    left_dark = np.zeros((8, 8))
    left_dark[:, 4:] = 1  # dark on the left, bright on the right: a vertical edge
    responses = filters.conv2d(left_dark, bank).max(axis=(1, 2))
    assert responses[0] > 0 and responses[1] <= 0 and responses[2] == 0 and responses[3] == 0
    top_dark = left_dark.T  # dark above, bright below
    responses = filters.conv2d(top_dark, bank).max(axis=(1, 2))
    assert responses[2] > 0 and responses[3] <= 0 and responses[0] == 0


def test_filter_image_keeps_the_size_of_grey_and_colour_images():
    grey = RNG.uniform(0, 255, size=(15, 22))
    colour = RNG.uniform(0, 255, size=(15, 22, 3))
    kernel = RNG.normal(size=(3, 5))
    np.testing.assert_allclose(filters.filter_image(grey, kernel),
                               cv2.filter2D(grey, -1, kernel, borderType=BORDER), atol=1e-9)
    np.testing.assert_allclose(filters.filter_image(colour, kernel),
                               cv2.filter2D(colour, -1, kernel, borderType=BORDER), atol=1e-9)
    with pytest.raises(ValueError, match="odd"):
        filters.filter_image(grey, np.ones((4, 4)))


def test_show_kernels_draws_numbers_and_titles():
    bank = filters.edge_filter_bank()
    names = ["left dark", "left bright", "top dark", "top bright"]
    fig = filter_plots.show_kernels(bank, titles=names, ncols=2, suptitle="four filters")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == names
    assert sorted(t.get_text() for t in axes[0].texts) == sorted(["-1"] * 8 + ["1"] * 8)
    fig = filter_plots.show_kernels([filters.PRESETS["box blur"], RNG.normal(size=(3, 7, 7))])
    assert {t.get_text() for t in fig.axes[0].texts} == {"0.11"}
    assert fig.axes[1].images[0].get_array().shape == (7, 7, 3)  # a colour filter drawn in colour
    with pytest.raises(ValueError, match="titles"):
        filter_plots.show_kernels(bank, titles=["one"])


def test_show_feature_maps_has_a_colour_bar_per_map_and_centres_signed_maps():
    maps = torch.randn(3, 10, 12)
    fig = filter_plots.show_feature_maps(maps, titles=["a", "b", "c"], signed=True)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3 and len(fig.axes) == 6  # three maps, three colour bars
    for image, fmap in zip(images, maps):
        low, high = image.get_clim()
        assert low == -high == pytest.approx(-fmap.abs().max().item())
    fig = filter_plots.show_feature_maps([np.arange(1000.0).reshape(20, 50)], robust=True)
    assert fig.axes[0].images[0].get_clim() == pytest.approx((4.995, 994.005))  # 0.5th and 99.5th percentiles
    with pytest.raises(ValueError, match="2-D"):
        filter_plots.show_feature_maps([np.zeros((2, 3, 4))])


def test_draw_array_writes_every_number_readably():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    filter_plots.draw_array(ax, np.array([[0, 255], [100, 200]]), title="patch")
    texts = {t.get_text(): t.get_color() for t in ax.texts}
    assert texts == {"0": "white", "255": "black", "100": "white", "200": "black"}  # contrast with the cell
    assert ax.get_title() == "patch"
    _, ax = plt.subplots()
    filter_plots.draw_array(ax, np.array([[-2.0, 0.5]]), signed=True)
    assert ax.images[0].get_clim() == (-2.0, 2.0) and [t.get_text() for t in ax.texts] == ["-2", "0.50"]


def test_show_filtered_draws_input_kernel_and_output():
    image = photo_grey()
    fig = filter_plots.show_filtered(image, filters.SOBEL_X, title="sobel")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == f"input ({image.shape[0]} x {image.shape[1]})"
    assert "add up to 0" in titles[1] and titles[2] == "output (edge kernel)"
    # the zero-padded border gives the largest answers; the robust colour scale lets them saturate
    result = filters.filter_image(image, filters.SOBEL_X)
    low, high = fig.axes[2].images[0].get_clim()
    assert low == -high and np.percentile(np.abs(result), 99) < high < np.abs(result).max()


def test_sample_photos_are_shipped_small_and_listed_with_their_licence():
    readme = (samples_dir().parent / "README.md").read_text()
    shipped = readme.split("## Shipped samples", 1)[1]
    expected_shapes = {"chelsea.png": (300, 451, 3), "coffee.jpg": (400, 600, 3)}
    for name, shape in expected_shapes.items():
        path = samples_dir() / name
        assert path.stat().st_size < 300_000
        assert cv2.imread(str(path)).shape == shape
        assert re.search(rf"`{re.escape(name)}`.*(CC0|public domain)", shipped, re.I | re.S), name
    unlisted = [p.name for p in samples_dir().iterdir() if p.is_file() and f"`{p.name}`" not in readme]
    assert unlisted == [], "every shipped sample needs its source and licence in data/README.md"


def test_direction_picture_colours_each_direction_and_darkens_weak_edges():
    angles = np.array([[0.0, np.pi / 2, np.pi, -np.pi / 2]])
    picture = filter_plots.direction_picture(angles, np.ones_like(angles))
    np.testing.assert_allclose(picture[0, 0], [1, 0, 0])  # brighter to the right: red
    np.testing.assert_allclose(picture[0, 2], [0, 1, 1])  # brighter to the left: cyan
    np.testing.assert_allclose(picture[0, 1], [0.5, 1, 0])  # brighter below (rows grow downwards)
    np.testing.assert_allclose(picture[0, 3], [0.5, 0, 1])  # brighter above
    dim = filter_plots.direction_picture(angles, np.array([[0.0, 1, 1, 1]]))
    np.testing.assert_allclose(dim[0, 0], 0)  # no edge: black
    with pytest.raises(ValueError, match="one shape"):
        filter_plots.direction_picture(angles, np.ones((2, 4)))


def test_direction_wheel_agrees_with_the_gradient_of_a_ramp():
    """A ramp brighter to the right and below: Sobel's direction gets the wheel's colour at that angle."""
    wheel = filter_plots.direction_wheel(101)
    np.testing.assert_allclose(wheel[50, 100], [1, 0, 0], atol=0.05)  # right edge of the wheel: red
    np.testing.assert_allclose(wheel[0, 0], 0)  # outside the disc: black
    rows, cols = np.mgrid[0:20, 0:20].astype(float)
    ramp = rows + cols  # brighter towards the bottom right
    gx, gy = same(ramp, filters.SOBEL_X)[5:-5, 5:-5], same(ramp, filters.SOBEL_Y)[5:-5, 5:-5]
    colour = filter_plots.direction_picture(np.arctan2(gy, gx), np.hypot(gx, gy))[0, 0]
    np.testing.assert_allclose(colour, wheel[85, 85], atol=0.05)  # the wheel's bottom-right


def test_show_gradient_draws_four_labelled_pictures_and_the_key():
    image = photo_grey()
    gx, gy = filters.filter_image(image, filters.SOBEL_X), filters.filter_image(image, filters.SOBEL_Y)
    fig = filter_plots.show_gradient(gx, gy, np.hypot(gx, gy), np.arctan2(gy, gx), suptitle="edges")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["gx: Sobel x (vertical edges)", "gy: Sobel y (horizontal edges)"]
    (key,) = fig.axes[3].child_axes  # the colour wheel, in the direction picture's corner
    assert key.get_title() == "brighter towards" and fig._suptitle.get_text() == "edges"
    with pytest.raises(ValueError, match="one shape"):
        filter_plots.show_gradient(gx, gy[1:], gx, gy)
