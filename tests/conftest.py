import crawl_fixtures
import pytest


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on now."""
    return crawl_fixtures.free_port()


@pytest.fixture(scope="session")
def colour_store(tmp_path_factory):
    """120 labelled 64x64 images, black or white (plus noise): an attribute anything learns,
    in the packshots.h5 layout (images, ids, labels, label_names)."""
    import numpy as np

    from pipelines.processing.h5store import write_image_store

    rng = np.random.default_rng(0)
    n = 120
    colour = rng.integers(0, 2, n)
    images = np.where(colour[:, None, None, None] == 1, 230, 20).astype(np.uint8)
    images = np.broadcast_to(images, (n, 64, 64, 3)).copy()
    images += rng.integers(0, 20, images.shape, dtype=np.uint8)
    labels = np.stack([colour == 0, colour == 1], 1).astype(np.uint8)
    return write_image_store(tmp_path_factory.mktemp("colours") / "p.h5",
                             [f"P{i}" for i in range(n)], images, {"labels": labels},
                             attrs={"label_names": ["color_black", "color_white"]})
