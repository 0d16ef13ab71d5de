"""Keypoint verification finds the coin a query shows even where the embedding's shortlist
missed it, by letting descriptors vote over a small collection's references."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coinlens.identify.engine import Matcher
from coinlens.identify.scoring import Calibration
from coinlens.identify.verify import KeypointVerifier, decode_crop
from coinlens.index import ReferenceIndex
from coinlens.vision import load_image
from coinlens.vision.keypoints import FEATURE_SIZE

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "euro-coins" / "references"


def _references() -> tuple[list[np.ndarray], list[int]]:
    crops, types = [], []
    for type_id, folder in enumerate(sorted(SAMPLE.iterdir())):
        for path in sorted(folder.glob("*.jpg"))[:5]:
            crops.append(np.asarray(load_image(path.read_bytes()).rgb.resize((300, 300))))
            types.append(type_id)
    return crops, types


def _index(crops: list[np.ndarray], types: list[int]) -> tuple[ReferenceIndex, np.ndarray]:
    """References whose embeddings say nothing (random directions), so that only keypoints
    can find the right one."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(len(crops), 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ReferenceIndex(64)
    ids = np.arange(len(crops))
    index.add(ids, vectors, np.array(types), ids + 1000, [f"sha{i}" for i in ids])
    query = rng.normal(size=(1, 64)).astype(np.float32)
    return index, query / np.linalg.norm(query)


def _match(index, query_vector, crops, query_crop, vote_limit, exclude=None, calibration=None):
    verifier = KeypointVerifier(lambda i: crops[i], shortlist=5, vote_limit=vote_limit)
    matcher = Matcher(index, calibration or Calibration(), neighbours=10, verifier=verifier)
    results = matcher.match(query_vector, [[0]], exclude=exclude, query_crop=lambda row: query_crop)
    return results[0][0], verifier


def test_descriptor_vote_finds_the_coin_the_shortlist_missed() -> None:
    crops, types = _references()
    index, query_vector = _index(crops, types)
    target = 17
    _, ids = index.search(query_vector, 5)
    assert target not in ids[0]  # the embedding's shortlist misses it
    turned = Image.fromarray(crops[target]).rotate(
        65, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128)
    )
    query_crop = np.asarray(turned.resize((240, 240)))

    suggestions, verifier = _match(index, query_vector, crops, query_crop, vote_limit=1000)
    assert verifier.verified == 1
    assert suggestions[0].type_id == types[target]
    assert suggestions[0].evidence[0] == target

    # above the vote limit only the shortlist is verified: the coin is not found
    suggestions, _ = _match(index, query_vector, crops, query_crop, vote_limit=10)
    assert target not in [e for s in suggestions for e in s.evidence]

    # leave-one-out: the query's own specimen and copies never come back through the vote
    excluded = [({1000 + target}, {f"sha{target}"})]
    suggestions, _ = _match(index, query_vector, crops, query_crop, 1000, exclude=excluded)
    assert target not in [e for s in suggestions for e in s.evidence]

    # a calibration that found verification unhelpful on held-out coins does not run it
    off = Calibration(verify_weight=0.0)
    suggestions, verifier = _match(index, query_vector, crops, query_crop, 1000, calibration=off)
    assert verifier.verified == 0
    assert target not in [e for s in suggestions for e in s.evidence]


def test_calibration_keeps_verification_only_where_it_helps(tmp_path: Path) -> None:
    """On held-out coins that keypoints recognise (turned photos of reference coins), training's
    calibration keeps verification; on photos without keypoints it adds nothing and is dropped."""
    import io

    from coinlens.identify.engine import CropRef
    from coinlens.identify.training import calibrate
    from coinlens.storage import LocalStore

    crops, types = _references()
    index, _ = _index(crops, types)
    store = LocalStore(tmp_path)
    rng = np.random.default_rng(5)
    count = 56
    vectors = rng.normal(size=(count, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    def heldout(picture) -> list[CropRef]:
        refs = []
        for q in range(count):
            source = q % len(crops)
            buffer = io.BytesIO()
            picture(source, q).save(buffer, format="JPEG", quality=90)
            key = f"{picture.__name__}/{q}.jpg"
            store.put(key, buffer.getvalue())
            refs.append(CropRef(5000 + q, 9000 + q, "unknown", key, True, key, types[source]))
        return refs

    def turned(source: int, q: int) -> Image.Image:
        return Image.fromarray(crops[source]).rotate(
            20 + 5 * q, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128)
        )

    def blank(source: int, q: int) -> Image.Image:
        return Image.new("RGB", (240, 240), (128, 128, 128))

    for picture, kept in ((turned, True), (blank, False)):
        verifier = KeypointVerifier(lambda i: crops[i])
        calibration, _ = calibrate(
            index,
            heldout(picture),
            vectors,
            target_precision=0.98,
            verifier=verifier,
            store=store,
        )
        assert verifier.verified > 0
        assert (calibration.verify_weight > 0) is kept


def test_a_verified_reference_rises_however_far_down_the_embedding_put_it() -> None:
    from coinlens.identify.verify import FULL_INLIERS, MIN_INLIERS, lifted

    best = 0.9
    # the same coin, matched by many keypoints, from far down the ranking: above the best
    assert lifted(0.3, best, FULL_INLIERS, weight=0.5) == pytest.approx(best + 0.5)
    # chance matches change nothing; a few matches lift part way
    assert lifted(0.3, best, MIN_INLIERS) == 0.3
    assert 0.3 < lifted(0.3, best, (MIN_INLIERS + FULL_INLIERS) // 2) < best + 0.5
    # the best neighbour itself, fully verified, gains the weight
    assert lifted(best, best, FULL_INLIERS, weight=0.5) == pytest.approx(best + 0.5)

    # re-scoring a shortlist: the coin the query shows, last by the embedding, comes first
    crops, _ = _references()
    target = 17
    query = np.asarray(
        Image.fromarray(crops[target])
        .rotate(40, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
        .resize((240, 240))
    )
    shortlist = np.array([3, 9, 25, target])
    verifier = KeypointVerifier(lambda i: crops[i], shortlist=4)
    similarities, ids = verifier.rescore(
        query, np.array([best, 0.85, 0.8, 0.2], np.float32), shortlist, weight=0.5
    )
    assert ids[0] == target and similarities[0] > best


def _pair_photo(front: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Two sides stacked on a white card, as catalogue photos show them."""
    card = Image.new("RGB", (320, 640), (250, 250, 248))
    card.paste(Image.fromarray(front).resize((300, 300)), (10, 10))
    card.paste(Image.fromarray(back).resize((300, 300)), (10, 330))
    return np.asarray(card)


def test_a_side_of_a_pair_photo_is_verified_on_the_whole_photo_too() -> None:
    """A side crop with nothing to match (cut badly, or a tiny thumbnail) still finds the
    reference whose pair photo its own photo rescans; a reference without a pair photo is
    compared crop to crop only."""
    from coinlens.identify.verify import CoinViews

    crops, _ = _references()
    target = 17
    views = {
        i: CoinViews(crops[i], _pair_photo(crops[i], crops[(i + 1) % len(crops)]))
        for i in (3, 9, target)
    }
    views[25] = CoinViews(crops[25])
    rescan = Image.fromarray(views[target].picture).resize((200, 400))
    blank = np.full((240, 240, 3), 128, np.uint8)
    shortlist = np.array([3, 9, 25, target])
    similarities = np.array([0.9, 0.85, 0.8, 0.2], np.float32)

    verifier = KeypointVerifier(views.__getitem__, shortlist=4)
    lifted_up, ids = verifier.rescore(
        CoinViews(blank, np.asarray(rescan)), similarities, shortlist, weight=0.5
    )
    assert ids[0] == target and lifted_up[0] > 0.9

    # the crop alone finds nothing: the order stays the embedding's
    _, ids = verifier.rescore(CoinViews(blank), similarities, shortlist, weight=0.5)
    assert list(ids) == list(shortlist)


def test_pair_photos_reach_the_verifier_from_ingest_and_upload(cli, home: Path, tmp_path) -> None:
    """Ingested sides of a pair photo are verified with that photo, and so is an uploaded one;
    a single coin has its crop alone."""
    from coinlens.catalog import Home
    from coinlens.catalog import Image as ImageRow
    from coinlens.identify.engine import store_verifier
    from coinlens.identify.service import coins_in_photo

    crops, _ = _references()
    folder = tmp_path / "refs" / "RRC 1-1"
    folder.mkdir(parents=True)
    pair = Image.fromarray(_pair_photo(crops[0], crops[1]))
    pair.save(folder / "pair.jpg", quality=92)
    Image.fromarray(crops[2]).save(folder / "single.jpg", quality=92)
    result = cli("ingest", tmp_path / "refs", "--home", home)
    assert result.exit_code == 0, result.output

    opened = Home.open(home)
    with opened.catalog.reader() as session:
        images = session.query(ImageRow).order_by(ImageRow.id).all()
        layouts = {row.id: (row.crop or {}).get("layout") for row in images}
        photos = {row.key for row in images if (row.crop or {}).get("layout") == "pair"}
    assert sorted(layouts.values()) == ["crop", "pair", "pair"], layouts
    verifier = store_verifier(opened)
    for image_id, layout in layouts.items():
        points = verifier.reference(image_id)
        assert (points.picture is not None) is (layout == "pair")
        assert len(points.crop) > 0

    # the photo is an extra: gone from the store, or unreadable, the crop alone is verified
    (photo,) = photos
    for damage in (lambda: opened.store.delete(photo), lambda: opened.store.put(photo, b"junk")):
        damage()
        verifier = store_verifier(opened)
        for image_id in layouts:
            points = verifier.reference(image_id)
            assert points.picture is None and len(points.crop) > 0
    # a reference crop gone or unreadable matches no keypoints instead of stopping the batch
    crop_key = (images[0].crop or {}).get("key") or images[0].key
    for damage in (
        lambda: opened.store.put(crop_key, b"junk"),
        lambda: opened.store.delete(crop_key),
    ):
        damage()
        assert len(store_verifier(opened).reference(images[0].id).crop) == 0

    uploaded = coins_in_photo((folder / "pair.jpg").read_bytes(), max_pixels=10**8)
    assert len(uploaded) == 2 and all(c.picture_jpeg for c in uploaded)
    single = coins_in_photo((folder / "single.jpg").read_bytes(), max_pixels=10**8)
    assert len(single) == 1 and single[0].picture_jpeg is None


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def test_a_stored_crop_is_read_for_keypoints_by_a_proper_resize() -> None:
    """A 640 px stored crop is decoded whole and resized to the keypoint size, as a decode at
    full size would give it, not by the JPEG's own half-scale decoding (which lost matches); a
    large photo still decodes at a fraction first and comes out at the keypoint size."""
    coin = load_image(sorted((SAMPLE / "2e").glob("*.jpg"))[0].read_bytes()).rgb
    crop = _jpeg(coin.resize((640, 640), Image.Resampling.LANCZOS))
    expected = Image.open(io.BytesIO(crop)).convert("RGB")
    expected.thumbnail((FEATURE_SIZE, FEATURE_SIZE))
    assert np.array_equal(decode_crop(crop), np.asarray(expected))
    photo = decode_crop(_jpeg(coin.resize((2600, 2600), Image.Resampling.BICUBIC)))
    assert photo.shape == (FEATURE_SIZE, FEATURE_SIZE, 3)
