import numpy as np
import pytest

from robot_parl.data.video import read_mp4, write_mp4


def _moving_gradient(t, h, w):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(x * 4 + 8 * i) % 256, (y * 4) % 256, np.full_like(x, 128)], -1)
                     for i in range(t)]).astype(np.uint8)


def test_mp4_round_trip_is_close_and_keeps_every_frame(tmp_path):
    frames = _moving_gradient(12, 48, 64)
    path = write_mp4(tmp_path / "a.mp4", frames, fps=10)
    back = read_mp4(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3.0
    assert not (tmp_path / "a.mp4.partial").exists()


def test_odd_sizes_are_padded_and_bad_input_refused(tmp_path):
    back = read_mp4(write_mp4(tmp_path / "b.mp4", _moving_gradient(3, 31, 45), fps=5))
    assert back.shape == (3, 32, 46, 3)
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "c.mp4", np.zeros((3, 8, 8, 3), np.float32), fps=5)
    with pytest.raises(ValueError, match="fps"):
        write_mp4(tmp_path / "c.mp4", np.zeros((3, 8, 8, 3), np.uint8), fps=0)
    assert not (tmp_path / "c.mp4").exists()
