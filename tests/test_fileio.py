"""Files written atomically get the user's usual permissions (umask), not a temporary file's 0600."""

from __future__ import annotations

import os
import stat

import pytest

from imagemachines.fileio import atomic_write, user_umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_results_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    user_umask.cache_clear()
    try:
        atomic_write(tmp_path / "out.json", lambda tmp: tmp.write_text("{}"))
    finally:
        os.umask(old)
        user_umask.cache_clear()
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == mode
    assert (tmp_path / "out.json").read_text() == "{}"
