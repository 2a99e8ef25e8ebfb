"""Pick each product's front-facing, full-body model photo with K-means, no human in the loop.

The thesis clustered 64x64 binary silhouettes (k=3) and chose the front cluster by eye. Here a
photo is described by what separates the five kinds of shot shops publish:

- extent: how tall the person is in the frame and whether the frame cuts them off at the
  bottom (knee crops, detail close-ups) or at the sides (close-ups);
- shape: width against height (side views are narrow), left-right symmetry of the silhouette,
  how much of its box it fills, and a coarse 16x8 silhouette reduced by PCA (layout);
- the face: in a front view the head is hair on top and skin below, in a back view it is hair
  throughout, so the colour contrast between the top and the lower part of the head separates
  the two views that silhouettes alone cannot.

The features are standardised and clustered with scikit-learn's KMeans. The front full-body
cluster is the one whose centre scores highest on

    score = z(height) + z(symmetry) + z(face contrast) + z(width / height)
            - 2 z(cut at the bottom) - 2 z(cut at the sides)

(z: standardised across the cluster centres), and each product gets the photo nearest that
centre.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.preprocessing import RobustScaler

THUMB = (160, 240)  # width, height the photo is reduced to before measuring
FEATURES = ("height", "top", "cut_bottom", "cut_sides", "aspect", "fill", "symmetry", "face")
SCORE = {"height": 1.0, "symmetry": 1.0, "face": 1.0, "aspect": 1.0, "cut_bottom": -2.0,
         "cut_sides": -2.0}
FACE_SATURATION = 0.25 # summed RGB difference (0..3) above which a face is surely there
N_LAYOUT = 4  # PCA components of the coarse silhouette
# Weights on the standardised features: the face is what tells front from back, so it counts
# twice; the layout components together count as much as one shape feature.
WEIGHTS = {"face": 2.0, "aspect": 2.0, "top": 0.0, "fill": 0.0, "symmetry": 0.0}


def load_thumbnail(path: Path) -> np.ndarray:
    """The photo as float RGB in [0, 1], THUMB sized (JPEG draft mode makes this cheap)."""
    with Image.open(path) as im:
        im.draft("RGB", (THUMB[0] * 2, THUMB[1] * 2))
        im = im.convert("RGB").resize(THUMB, Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.float32) / 255.0


def silhouette(rgb: np.ndarray, threshold: float = 0.08) -> np.ndarray:
    """Person mask: pixels that differ from the studio background (the border's median)."""
    border = np.concatenate([rgb[:3].reshape(-1, 3), rgb[:, :3].reshape(-1, 3),
                             rgb[:, -3:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    mask = np.abs(rgb - background).max(axis=2) > threshold
    # pad with the edge so the closing does not erode where the frame cuts the person off
    mask = np.pad(mask, 3, mode="edge")
    mask = ndimage.binary_closing(mask, iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    return ndimage.binary_opening(mask, iterations=1)[3:-3, 3:-3]


def face_contrast(rgb: np.ndarray, mask: np.ndarray, y0: int, bh: int) -> float:
    """Colour difference between the crown of the head and where the face would be.

    Front and side views: hair above, skin below (large); back views: hair on both (small).
    Positions are fractions of the person's height, as in a full-body shot.
    """
    top = mask[y0:y0 + max(2, int(0.04 * bh))]
    cols = np.nonzero(top.any(0))[0]
    if len(cols) == 0:
        return 0.0
    cx = int(np.median(np.nonzero(top)[1]))
    hw = max(1, int(0.03 * bh))

    def band(lo: float, hi: float) -> np.ndarray:
        rows = slice(y0 + int(lo * bh), y0 + max(int(lo * bh) + 1, int(hi * bh)))
        cols = slice(max(0, cx - hw), cx + hw + 1)
        return rgb[rows, cols][mask[rows, cols]]

    crown, face = band(0.01, 0.035), band(0.055, 0.10)
    if len(crown) == 0 or len(face) == 0:
        return 0.0
    # saturate: a face is there or not; how much it contrasts with the hair does not matter
    return float(min(np.abs(crown.mean(0) - face.mean(0)).sum(), FACE_SATURATION))


def photo_features(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the named FEATURES, a 16x8 coarse silhouette) of one thumbnail."""
    h, w = rgb.shape[:2]
    mask = silhouette(rgb)
    if mask.sum() < 10:  # nothing found: a blank or broken photo
        return np.zeros(len(FEATURES), np.float32), np.zeros(128, np.float32)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box = mask[y0:y1, x0:x1]
    bh, bw = y1 - y0, x1 - x0
    mirrored = box[:, ::-1]
    symmetry = (box & mirrored).sum() / max((box | mirrored).sum(), 1)
    face = face_contrast(rgb, mask, y0, bh)
    named = np.array([
        bh / h, y0 / h, float(mask[-2:].any()), float(mask[:, :2].any() or mask[:, -2:].any()),
        bw / bh, box.mean(), symmetry, face], np.float32)
    coarse = np.asarray(Image.fromarray(box.astype(np.uint8) * 255).resize((8, 16),
                                                                            Image.BILINEAR),
                        np.float32).ravel() / 255.0
    return named, coarse


@dataclass
class FrontViewModel:
    """A fitted clustering and the cluster chosen as front full-body."""

    scaler: RobustScaler
    pca: PCA
    kmeans: KMeans
    front_cluster: int
    cluster_scores: np.ndarray
    weights: np.ndarray

    def embed(self, named: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        layout = self.pca.transform(coarse)
        x = self.scaler.transform(np.hstack([named, layout]))
        return x * self.weights

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Distance of each embedded photo to the front cluster's centre."""
        return np.linalg.norm(x - self.kmeans.cluster_centers_[self.front_cluster], axis=1)


def fit_front_view(named: np.ndarray, coarse: np.ndarray, k: int = 5,
                   seed: int = 0) -> FrontViewModel:
    """Cluster photos and pick the front full-body cluster by the documented score."""
    pca = PCA(n_components=min(N_LAYOUT, len(coarse), coarse.shape[1]), random_state=seed)
    layout = pca.fit_transform(coarse)
    scaler = RobustScaler(quantile_range=(10.0, 90.0)).fit(np.hstack([named, layout]))
    weights = np.array([WEIGHTS.get(f, 1.0) for f in FEATURES]
                       + [1.0 / np.sqrt(layout.shape[1])] * layout.shape[1], np.float32)
    x = scaler.transform(np.hstack([named, layout])) * weights
    kmeans = KMeans(n_clusters=min(k, len(x)), n_init=10, random_state=seed).fit(x)
    # score each cluster on the mean raw features of its members
    means = np.stack([named[kmeans.labels_ == c].mean(0) for c in range(kmeans.n_clusters)])
    spread = means.std(0) + 1e-6
    z = (means - means.mean(0)) / spread
    scores = sum(w * z[:, FEATURES.index(f)] for f, w in SCORE.items())
    model = FrontViewModel(scaler, pca, kmeans, int(np.argmax(scores)), scores, weights)
    return model


def select_front(photo_products: list[str], named: np.ndarray, coarse: np.ndarray, k: int = 5,
                 seed: int = 0) -> tuple[FrontViewModel, dict[str, tuple[int, int, float]]]:
    """Per product: (index of its chosen photo, that photo's cluster, distance to the centre)."""
    model = fit_front_view(named, coarse, k, seed)
    x = model.embed(named, coarse)
    dist = model.distances(x)
    labels = model.kmeans.predict(x)
    best: dict[str, tuple[int, int, float]] = {}
    for i, product in enumerate(photo_products):
        if product not in best or dist[i] < best[product][2]:
            best[product] = (i, int(labels[i]), float(dist[i]))
    return model, best


def photo_table(catalogue: pd.DataFrame) -> pd.DataFrame:
    """One row per stored model photo: id, image_path (relative to assets_store/), image_url."""
    rows = [(pid, path, url)
            for pid, urls, paths in zip(catalogue["id"], catalogue["model_img_urls"],
                                        catalogue["model_img_paths"], strict=True)
            for url, path in zip(urls, paths, strict=False) if path]
    return pd.DataFrame(rows, columns=["id", "image_path", "image_url"])


def compute_features(paths, workers: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(named features, coarse silhouettes, readable mask) for image files."""

    def one(path):
        try:
            return photo_features(load_thumbnail(path))
        except (OSError, ValueError):
            return None

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, paths))
    ok = np.array([r is not None for r in results], bool)
    named = np.stack([r[0] for r in results if r is not None]) if ok.any() else \
        np.zeros((0, len(FEATURES)), np.float32)
    coarse = np.stack([r[1] for r in results if r is not None]) if ok.any() else \
        np.zeros((0, 128), np.float32)
    return named, coarse, ok
