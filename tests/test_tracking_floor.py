"""Floor localisation: homography from a pinhole camera, from correspondences, foot points."""

from __future__ import annotations

import numpy as np
import pytest

from wdp.analytics.synthetic import DEFAULT_CAMERA, Camera, Posture, skeleton_3d
from wdp.tracking import FloorProjector, foot_points


def ray_floor_intersection(cam: Camera, pixels: np.ndarray) -> np.ndarray:
    """Independent reference: back-project each pixel and intersect the ray with z = 0."""
    centre = -cam.R.T @ cam.t
    out = []
    for u, v in pixels:
        d = cam.R.T @ np.linalg.solve(cam.K, [u, v, 1.0])
        s = -centre[2] / d[2]
        out.append(centre[:2] + s * d[:2] if s > 0 else [np.nan, np.nan])
    return np.array(out)


CAMERAS = [
    DEFAULT_CAMERA,
    Camera.look_at((0.3, 0.3, 2.8), (4.0, 5.0, 0.0), fov_deg=70, width=320, height=240),
    Camera.look_at((6.0, 6.0, 1.2), (2.0, 1.0, 1.0), fov_deg=100),  # nearly level: horizon in view
]


@pytest.mark.parametrize("cam", CAMERAS)
def test_from_camera_matches_ray_intersection(cam):
    proj = cam.floor_projector()
    rng = np.random.default_rng(1)
    px = rng.uniform([0, 0], [cam.width, cam.height], (200, 2))
    got = proj.image_to_floor(px)
    ref = ray_floor_intersection(cam, px)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref[:, 0])
    assert ok.sum() > 50
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cam", CAMERAS)
def test_floor_points_round_trip(cam):
    proj = cam.floor_projector()
    floor = np.array([[2.0, 3.0], [3.5, 5.0], [1.0, 2.5], [4.2, 1.7]])
    pts3 = np.column_stack([floor, np.zeros(len(floor))])
    in_front = (pts3 @ cam.R.T + cam.t)[:, 2] > 0
    px = cam.project(pts3)
    np.testing.assert_allclose(proj.image_to_floor(px)[in_front], floor[in_front], atol=1e-9)
    np.testing.assert_allclose(proj.floor_to_image(floor), px, atol=1e-7)


def test_points_above_the_horizon_are_nan():
    cam = CAMERAS[2]
    proj = cam.floor_projector()
    sky = cam.project(np.array([[0.0, -10.0, 1.5], [-3.0, -8.0, 3.0]]))  # far away above camera height
    assert np.isnan(proj.image_to_floor(sky)).all()
    # a point behind the camera that projects into the image (negative depth) is not on the floor either
    assert np.isnan(proj.image_to_floor(np.array([np.nan, 1.0]))).all()


def test_from_correspondences_recovers_the_camera_homography():
    cam = CAMERAS[1]
    floor = np.array([[1.0, 2.0], [5.0, 2.0], [5.0, 6.0], [1.0, 6.0], [3.0, 4.0], [2.0, 5.5]])
    px = cam.project(np.column_stack([floor, np.zeros(len(floor))]))
    est = FloorProjector.from_correspondences(px, floor)
    probe = np.random.default_rng(2).uniform([40, 60], [280, 230], (50, 2))
    np.testing.assert_allclose(est.image_to_floor(probe), cam.floor_projector().image_to_floor(probe), atol=1e-8)
    with pytest.raises(ValueError):
        FloorProjector.from_correspondences(px[:3], floor[:3])
    with pytest.raises(ValueError):
        FloorProjector(np.zeros((3, 3)))


def test_scaled_projector_takes_normalized_coordinates():
    cam = DEFAULT_CAMERA
    proj = cam.floor_projector()
    px = np.array([[100.0, 200.0], [30.0, 150.0]])
    np.testing.assert_allclose(proj.scaled(256).image_to_floor(px / 256), proj.image_to_floor(px), atol=1e-12)
    np.testing.assert_allclose(
        proj.scaled(256, 128).image_to_floor(px / [256, 128]), proj.image_to_floor(px), atol=1e-12
    )


def test_person_is_located_at_the_feet():
    cam = DEFAULT_CAMERA
    on_floor = cam.floor_projector()
    ankle_plane = cam.floor_projector(plane_height=0.04 * 1.75)  # the stick figure's ankle height
    for x, y, heading in [(3.0, 3.0, 0.0), (1.5, 5.0, 1.0), (4.5, 2.2, 2.5)]:
        p = Posture(x=x, y=y, heading=heading)
        kp = cam.keypoints(p)
        truth = skeleton_3d(p)[[15, 16], :2].mean(0)  # floor spot below the ankle midpoint
        box = np.array([*kp[:, :2].min(0), *kp[:, :2].max(0)])
        ankles = skeleton_3d(p)[[15, 16], :2]
        np.testing.assert_allclose(ankle_plane.image_to_floor(kp[[15, 16], :2]), ankles, atol=1e-9)
        # the image midpoint of the ankles is not exactly the image of their midpoint (perspective)
        assert np.hypot(*(ankle_plane.locate(kp[None], box[None])[0] - truth)) < 0.01
        # on the z = 0 plane the ankles' 7 cm height shows as parallax away from the camera
        err = on_floor.locate(kp[None], box[None])[0] - truth
        assert 0.03 < np.hypot(*err) < 0.25


def test_foot_point_fallbacks():
    kp = np.zeros((3, 17, 3))
    kp[0, 15] = [10, 100, 0.9]
    kp[0, 16] = [20, 110, 0.9]
    kp[1, 15] = [10, 100, 0.1]  # not seen
    kp[1, 16] = [20, 110, 0.9]
    boxes = np.array([[0, 0, 40, 120], [0, 0, 40, 120], [5, 7, 45, 127]], float)
    np.testing.assert_allclose(foot_points(kp, boxes, 0.3), [[15, 105], [20, 110], [25, 127]])
